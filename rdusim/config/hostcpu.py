"""The host CPU of a machine as a device ops can run on (arch files' ``host_cpu``).

A named CPU from its datasheet: sockets, cores per socket, the all-core clock it holds
under vector/matrix load, and the dense FLOPs one core retires per cycle in each number
format it computes natively (FP32 FMA on AVX2 / AVX-512; BF16 on AVX512_BF16 or AMX;
INT8 on VNNI or AMX). Its memory is the machine's host DRAM (``Machine.host_dram``: the
capacity, the bandwidth and the achievable fraction of it). ``gemm_efficiency`` is the
achievable fraction of the peak rate in GEMMs, ``call_s`` the fixed cost of one op call
(thread-pool fork/join), ``dram_efficiency`` the achievable fraction of host DRAM's
bandwidth when the cores stream weights (STREAM-like). A format the CPU does not compute in natively is converted to
FP32 on the fly and computed at the FP32 rate (:meth:`HostCpu.compute_format`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from rdusim.config.strict import positive
from rdusim.graph.tensor import DType


@dataclass(frozen=True)
class HostCpu:
    model: str                                   # the CPU's name ("AMD Ryzen 9 5950X")
    sockets: int = field(metadata=positive())
    cores_per_socket: int = field(metadata=positive())
    clock_hz: float = field(metadata=positive())             # all-core clock under vector load
    fp32_flops_per_cycle_per_core: float = field(metadata=positive())
    bf16_flops_per_cycle_per_core: Optional[float] = field(default=None, metadata=positive())
    int8_ops_per_cycle_per_core: Optional[float] = field(default=None, metadata=positive())
    gemm_efficiency: float = field(default=1.0, metadata={"gt": 0, "le": 1})
    dram_efficiency: float = field(default=1.0, metadata={"gt": 0, "le": 1})   # of host DRAM's bandwidth
    call_s: float = field(default=0.0, metadata={"ge": 0})

    @property
    def cores(self) -> int:
        return self.sockets * self.cores_per_socket

    def native_rate(self, dtype: DType) -> Optional[float]:
        """Peak dense rate of the whole host at ``dtype`` (FLOP/s or OP/s), None when it does
        not compute in it natively."""
        per_cycle = {DType.FP32: self.fp32_flops_per_cycle_per_core,
                     DType.BF16: self.bf16_flops_per_cycle_per_core,
                     DType.INT8: self.int8_ops_per_cycle_per_core}.get(dtype)
        return None if per_cycle is None else self.cores * self.clock_hz * per_cycle

    def compute_format(self, weight: DType) -> DType:
        """The format a GEMM on weights stored at ``weight`` runs in: the weights' own when
        the CPU computes in it natively (fp16 counts as bf16's rate only when named so),
        else FP32 (the weights converted on the fly)."""
        return weight if self.native_rate(weight) is not None else DType.FP32

    def achievable_rate(self, weight: DType) -> float:
        """The GEMM rate on weights stored at ``weight``: the compute format's peak x gemm_efficiency."""
        return self.native_rate(self.compute_format(weight)) * self.gemm_efficiency

    def derived(self) -> dict[str, float]:
        out = {"host_cpu.cores": float(self.cores)}
        for d in (DType.FP32, DType.BF16, DType.INT8):
            r = self.native_rate(d)
            if r is not None:
                out[f"host_cpu.{d.value}_{'ops' if d is DType.INT8 else 'flops'}_per_s"] = r
        return out
