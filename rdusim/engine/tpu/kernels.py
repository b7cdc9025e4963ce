"""How long one XLA fusion takes on one TPU chip.

The kernels are the library-fusion cut of the op graph (rdusim.engine.gpu.fusion_rules,
which XLA's fusions follow: elementwise epilogues on matmuls, fused norms, flash
attention, a dequantisation prologue). Each runs on the chip's TensorCore as a roofline
made honest about the MXUs' shape:

- a matmul (``batch`` x M x N x K) is tiled onto ``mxus_per_core`` systolic arrays of
  ``mxu_edge`` x ``mxu_edge``: N and K are padded to the array edge, M (the rows
  streamed through it) to ``kernel.row_granularity`` (a vector register's sublanes), and
  the padded work runs at ``kernel.mxu_efficiency`` of the chip's rate in the compute
  format; a dequantisation prologue runs on the vector unit;
- attention is one flash-attention fusion (scores stay in VMEM): its two matmuls padded
  the same way, its softmax on the vector unit;
- vector and embedding fusions: their FLOPs on the vector unit at
  ``kernel.vector_efficiency``;
- every fusion moves its HBM bytes at the HBM's achievable bandwidth and lasts at least
  ``kernel.min_kernel_s``;
- collectives run over ICI (rdusim.engine.tpu.collectives).

Identical kernels are timed once per run (the run's cache, keyed by content).
"""

from __future__ import annotations

from rdusim.cache import active_cache
from rdusim.config.arch_tpu import TpuArch
from rdusim.engine.gpu.kernels import KernelClass, KernelTime, KernelWork
from rdusim.engine.tpu.collectives import tpu_collective


def kernel_time(arch: TpuArch, work: KernelWork) -> KernelTime:
    return active_cache().get_or_compute("tpu_kernel", (arch, work), lambda: _kernel_time(arch, work))


def _pad(x: int, to: int) -> int:
    return -(-x // to) * to


def _mxu_rate(arch: TpuArch) -> float:
    return arch.chip.bf16_flops_per_s * arch.kernel.mxu_efficiency


def _vector_rate(arch: TpuArch) -> float:
    return arch.chip.vector_flops_per_s * arch.kernel.vector_efficiency


def _finish(arch: TpuArch, compute_s: float, memory_s: float, nbytes: float) -> KernelTime:
    duration = max(compute_s, memory_s, arch.kernel.min_kernel_s)
    return KernelTime(duration, compute_s, memory_s, 0.0, 0, 1, nbytes)


def _kernel_time(arch: TpuArch, work: KernelWork) -> KernelTime:
    if work.cls == KernelClass.COLLECTIVE:
        c = work.collective
        cost = tpu_collective(arch, c.kind, c.ranks, c.message_bytes)
        duration = max(cost.time_s, arch.kernel.min_kernel_s)
        return KernelTime(duration, 0.0, 0.0, duration, 0, 1, work.hbm_bytes, cost.algorithm, cost.steps,
                          wire_bytes=cost.wire_bytes)
    memory = work.hbm_bytes / arch.chip.hbm.effective_bandwidth_bytes_per_s
    edge, rows = arch.chip.mxu_edge, arch.kernel.row_granularity
    if work.cls == KernelClass.GEMM and work.gemm is not None:
        g = work.gemm
        padded = g.batch * 2.0 * _pad(g.m, rows) * _pad(g.n, edge) * _pad(g.k, edge)
        compute = padded / _mxu_rate(arch) + work.convert_flops / _vector_rate(arch)
        return _finish(arch, compute, memory, work.hbm_bytes)
    if work.cls == KernelClass.ATTENTION and work.attention is not None:
        a = work.attention      # every group of problems of a variable-length batch, each padded
        matmuls = sum(h * 2.0 * 2.0 * _pad(r, rows) * _pad(c, edge) * _pad(a.head_dim, edge) for h, r, c in a.groups())
        softmax = sum(5.0 * h * r * c for h, r, c in a.groups())
        return _finish(arch, matmuls / _mxu_rate(arch) + (softmax + work.convert_flops) / _vector_rate(arch), memory,
                       work.hbm_bytes)
    return _finish(arch, work.flops / _vector_rate(arch), memory, work.hbm_bytes)

