"""A DGX node as it is built: node -> GPUs -> SMs, tensor cores, smem/L2, HBM; NVLink; PCIe."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar, Mapping, Optional

from rdusim.config.arch_common import ArchKind, CollectiveSpec, Fabric, Link, MemoryTier, check_collectives
from rdusim.config.machine_cost import CostBlocks
from rdusim.config.policy import LaunchMode
from rdusim.config.hostcpu import HostCpu
from rdusim.config.strict import positive
from rdusim.graph.tensor import DType


@dataclass(frozen=True)
class GpuDevice:
    sms: int = field(metadata=positive())
    clock_hz: float = field(metadata=positive())
    tensor_flops_per_s: float = field(metadata=positive())   # dense BF16
    vector_flops_per_s: float = field(metadata=positive())   # non-tensor FP32/BF16
    smem_bytes_per_sm: float = field(metadata=positive())
    l2_bytes: float = field(metadata=positive())
    hbm: MemoryTier
    # dense tensor-core rates of the other compute formats (rdusim.config.formats);
    # absent: the GPU does not compute in that format natively
    tensor_fp8_flops_per_s: Optional[float] = field(default=None, metadata=positive())
    tensor_int8_flops_per_s: Optional[float] = field(default=None, metadata=positive())   # INT8 ops per s

    def tensor_rate(self, dtype: DType) -> float:
        """Dense tensor-core peak at ``dtype`` (bf16/fp16, fp8, int8); ValueError when the GPU
        has none (the deployment check, rdusim.config.formats.check_compute, rejects it first)."""
        rate = {DType.BF16: self.tensor_flops_per_s, DType.FP16: self.tensor_flops_per_s,
                DType.FP8_E4M3: self.tensor_fp8_flops_per_s, DType.INT8: self.tensor_int8_flops_per_s}.get(dtype)
        if rate is None:
            raise ValueError(f"no native {dtype.value} tensor rate")
        return rate


@dataclass(frozen=True)
class GpuLaunch:
    """Host CPU cost to launch one kernel, eager vs captured in a CUDA graph."""

    eager_s: float = field(metadata={"ge": 0})
    graph_s: float = field(metadata={"ge": 0})


@dataclass(frozen=True)
class GpuKernelModel:
    """How well library kernels use the device (CUTLASS-like tiles, split-K, FlashAttention)."""

    tile_large: int = field(metadata=positive())             # CTA tile edge, e.g. 128
    tile_small: int = field(metadata=positive())             # smallest CTA tile edge, e.g. 64
    mma_m: int = field(metadata=positive())                  # rows of one tensor-core MMA (padding of skinny GEMMs)
    small_tile_efficiency: float = field(metadata={"gt": 0, "le": 1})  # small tiles vs the large one
    tensor_efficiency: float = field(metadata={"gt": 0, "le": 1})   # large-tile, full-wave fraction of peak
    vector_efficiency: float = field(metadata={"gt": 0, "le": 1})   # fraction of vector peak
    split_k_min_depth: int = field(metadata=positive())      # fewest K elements per split-K slice
    flash_kv_block: int = field(metadata=positive())         # KV positions per split in flash-decoding
    vector_elements_per_cta: int = field(metadata=positive())  # elementwise work per CTA
    hbm_saturation_sm_fraction: float = field(metadata={"gt": 0, "le": 1})  # SMs needed to saturate HBM
    min_kernel_s: float = field(metadata={"ge": 0})          # launch latency + ramp + tail of any kernel
    # large-tile, full-wave fraction of the FP8 / INT8 peak (GEMMs of those formats reach a
    # different fraction of their peak than bf16 ones); required where the device has the rate
    tensor_fp8_efficiency: Optional[float] = field(default=None, metadata={"gt": 0, "le": 1})
    tensor_int8_efficiency: Optional[float] = field(default=None, metadata={"gt": 0, "le": 1})

    def tensor_efficiency_of(self, dtype: DType) -> float:
        """The large-tile fraction of peak GEMMs of ``dtype`` reach."""
        got = {DType.FP8_E4M3: self.tensor_fp8_efficiency, DType.INT8: self.tensor_int8_efficiency}.get(
            dtype, self.tensor_efficiency)
        if got is None:
            raise ValueError(f"no kernel.tensor_{dtype.value.split('_')[0]}_efficiency")
        return got


# NCCL: a fixed cost per collective (kernel start, sync, protocol) and its algorithm choice;
# the algorithms run over links.nvlink (rdusim.engine.collectives)
GpuCollectives = CollectiveSpec


@dataclass(frozen=True)
class GpuLinks:
    pcie: Link         # per GPU host link
    host_aggregate: Link  # the shared host-side limit all GPUs' copies contend for
    # per GPU, per direction, all NVLinks together (NVSwitch topology); absent on a
    # machine of one GPU with no NVLink (an RTX 3090 box, a PCIe card alone)
    nvlink: Optional[Fabric] = None


@dataclass(frozen=True)
class GpuNode:
    gpus: int = field(metadata=positive())
    host_dram: MemoryTier


@dataclass(frozen=True)
class GpuArch(CostBlocks):
    """A node of GPUs (the machine interface: rdusim.config.machine.Machine)."""

    KIND: ClassVar[ArchKind] = ArchKind.GPU
    DEVICE: ClassVar[str] = "GPU"
    LAUNCH_MODES: ClassVar[tuple[LaunchMode, ...]] = (LaunchMode.CUDA_EAGER, LaunchMode.CUDA_GRAPH)
    DEFAULT_STACK: ClassVar[str] = "nemo"

    name: str
    kind: ArchKind
    description: str
    node: GpuNode
    device: GpuDevice
    links: GpuLinks
    launch: GpuLaunch
    kernel: GpuKernelModel
    collectives: GpuCollectives
    host_cpu: Optional[HostCpu] = None     # the host CPU as a device (rdusim.config.hostcpu); None: not described
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), compare=False,
                                       metadata={"internal": True})

    # ---- the machine interface (rdusim.config.machine) ----
    @property
    def fabric_bytes_per_s(self) -> float:
        """What one device can send to its peers per second, all ports (0: no fabric)."""
        return self.links.nvlink.bandwidth_bytes_per_s if self.links.nvlink is not None else 0.0

    @property
    def host_link_bytes_per_s(self) -> float:
        """One device's link to the host, per direction."""
        return self.links.pcie.bandwidth_bytes_per_s

    @property
    def devices_per_node(self) -> int:
        return self.node.gpus

    @property
    def device_hbm(self) -> MemoryTier:
        return self.device.hbm

    @property
    def spill_tier(self) -> Optional[MemoryTier]:
        return None          # what does not fit in HBM does not run

    @property
    def host_dram(self) -> MemoryTier:
        return self.node.host_dram

    @property
    def max_tp(self) -> int:
        span = self.collectives.span
        return self.node.gpus if span is None else span.max_ranks

    def native_rate(self, dtype: DType) -> Optional[float]:
        """Peak dense tensor rate of one GPU at ``dtype`` (None: not computed natively)."""
        try:
            return self.device.tensor_rate(dtype)
        except ValueError:
            return None

    def at_compute(self, dtype: DType) -> "GpuArch":
        """The GPU with its tensor rate at ``dtype`` (bf16/fp16: unchanged)."""
        if dtype in (DType.BF16, DType.FP16):
            return self
        rate = self.native_rate(dtype)
        if rate is None:
            raise ValueError(f"{self.name} has no native {dtype.value} rate")
        return dataclasses.replace(self, device=dataclasses.replace(self.device, tensor_flops_per_s=rate))

    # what the library-fusion kernel cut reads (rdusim.engine.gpu.fusion_rules)
    @property
    def on_chip_row_bytes(self) -> float:
        return self.device.smem_bytes_per_sm

    @property
    def elements_per_work_item(self) -> int:
        return self.kernel.vector_elements_per_cta

    @property
    def peak_flops_per_s_per_device(self) -> float:
        return self.device.tensor_flops_per_s

    @property
    def hbm_bytes_per_node(self) -> float:
        return self.node.gpus * self.device.hbm.capacity_bytes

    @property
    def ridge_flops_per_byte(self) -> float:
        return self.device.tensor_flops_per_s / self.device.hbm.bandwidth_bytes_per_s

    def __post_init__(self) -> None:
        if self.kernel.tile_small > self.kernel.tile_large:
            raise ValueError("kernel.tile_small", f"at most kernel.tile_large ({self.kernel.tile_large})",
                             self.kernel.tile_small)
        for fmt in ("fp8", "int8"):       # a format's rate needs the fraction of it GEMMs reach
            if getattr(self.device, f"tensor_{fmt}_flops_per_s") is not None \
                    and getattr(self.kernel, f"tensor_{fmt}_efficiency") is None:
                raise ValueError(f"kernel.tensor_{fmt}_efficiency",
                                 f"a fraction in (0, 1] (device.tensor_{fmt}_flops_per_s is given)", None)
        if self.links.nvlink is None:
            if self.node.gpus > 1:
                raise ValueError("links.nvlink", f"the fabric joining the node's {self.node.gpus} GPUs", "none")
            return
        check_collectives(self.links.nvlink, self.collectives, self.node.gpus, "links.nvlink", "collectives")

    def derived(self) -> dict[str, float]:
        return {**self._derived(), **(self.host_cpu.derived() if self.host_cpu else {})}

    def _derived(self) -> dict[str, float]:
        return {
            "peak_flops_per_s_per_node": self.node.gpus * self.device.tensor_flops_per_s,
            "smem_bytes_per_device": self.device.sms * self.device.smem_bytes_per_sm,
            "hbm_bytes_per_node": self.hbm_bytes_per_node,
            "hbm_bandwidth_bytes_per_s_per_node": self.node.gpus * self.device.hbm.bandwidth_bytes_per_s,
            "ridge_flops_per_byte": self.ridge_flops_per_byte,
        }
