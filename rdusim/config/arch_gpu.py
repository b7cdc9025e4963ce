"""A DGX node as it is built: node -> GPUs -> SMs, tensor cores, smem/L2, HBM; NVLink; PCIe."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from rdusim.config.arch_common import ArchKind, Link, MemoryTier
from rdusim.config.strict import positive


@dataclass(frozen=True)
class GpuDevice:
    sms: int = field(metadata=positive())
    clock_hz: float = field(metadata=positive())
    tensor_flops_per_s: float = field(metadata=positive())   # dense BF16
    vector_flops_per_s: float = field(metadata=positive())   # non-tensor FP32/BF16
    smem_bytes_per_sm: float = field(metadata=positive())
    l2_bytes: float = field(metadata=positive())
    hbm: MemoryTier


@dataclass(frozen=True)
class GpuLaunch:
    """Host CPU cost to launch one kernel, eager vs captured in a CUDA graph."""

    eager_s: float = field(metadata={"ge": 0})
    graph_s: float = field(metadata={"ge": 0})


@dataclass(frozen=True)
class GpuLinks:
    nvlink: Link       # per GPU, per direction
    pcie: Link         # per GPU host link
    host_aggregate: Link  # the shared host-side limit all GPUs' copies contend for


@dataclass(frozen=True)
class GpuNode:
    gpus: int = field(metadata=positive())
    host_dram: MemoryTier


@dataclass(frozen=True)
class GpuArch:
    name: str
    kind: ArchKind
    description: str
    node: GpuNode
    device: GpuDevice
    links: GpuLinks
    launch: GpuLaunch
    framework_step_overhead_s: float = field(default=0.0, metadata={"ge": 0})
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), compare=False,
                                       metadata={"internal": True})

    @property
    def peak_flops_per_s_per_device(self) -> float:
        return self.device.tensor_flops_per_s

    @property
    def hbm_bytes_per_node(self) -> float:
        return self.node.gpus * self.device.hbm.capacity_bytes

    @property
    def ridge_flops_per_byte(self) -> float:
        return self.device.tensor_flops_per_s / self.device.hbm.bandwidth_bytes_per_s

    def derived(self) -> dict[str, float]:
        return {
            "peak_flops_per_s_per_node": self.node.gpus * self.device.tensor_flops_per_s,
            "smem_bytes_per_device": self.device.sms * self.device.smem_bytes_per_sm,
            "hbm_bytes_per_node": self.hbm_bytes_per_node,
            "hbm_bandwidth_bytes_per_s_per_node": self.node.gpus * self.device.hbm.bandwidth_bytes_per_s,
            "ridge_flops_per_byte": self.ridge_flops_per_byte,
        }
