"""The SN40L RDU node as it is built: node -> sockets -> PCUs, PMUs, AGCUs, RDN, memories."""

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
class PcuSpec:
    """Pattern Compute Unit: SIMD lanes x pipeline stages; a systolic array for matmul."""

    count: int = field(metadata=positive())
    lanes: int = field(metadata=positive())
    stages: int = field(metadata=positive())
    flops_per_lane_stage_per_cycle: float = field(metadata=positive())
    clock_hz: float = field(metadata=positive())
    # Fraction of peak a PCU sustains on elementwise / reduction work (no systolic reuse).
    vector_efficiency: float = field(default=1.0, metadata={"gt": 0, "le": 1})
    # rates of the other compute formats (rdusim.config.formats); absent: not computed
    # natively (weights in them are dequantised to bf16 on the fly)
    fp8_flops_per_lane_stage_per_cycle: Optional[float] = field(default=None, metadata=positive())
    int8_ops_per_lane_stage_per_cycle: Optional[float] = field(default=None, metadata=positive())

    @property
    def flops_per_s(self) -> float:
        """Peak FLOP rate of one PCU."""
        return self.lanes * self.stages * self.flops_per_lane_stage_per_cycle * self.clock_hz


@dataclass(frozen=True)
class PmuSpec:
    """Pattern Memory Unit: a banked SRAM scratchpad."""

    count: int = field(metadata=positive())
    capacity_bytes: float = field(metadata=positive())
    bandwidth_bytes_per_s: float = field(metadata=positive())


@dataclass(frozen=True)
class AgcuSpec:
    """Address Generation and Coalescing Unit: the tile's bridge to off-chip memory."""

    count: int = field(metadata=positive())
    bandwidth_bytes_per_s: float = field(metadata=positive())


@dataclass(frozen=True)
class RdnSpec:
    """Reconfigurable Dataflow Network (on-chip mesh)."""

    link_bandwidth_bytes_per_s: float = field(metadata=positive())
    hop_latency_s: float = field(default=0.0, metadata={"ge": 0})


@dataclass(frozen=True)
class RduLaunch:
    """Per-kernel launch cost: software-orchestrated (host) vs hardware (AGCU schedule).

    Under SO the host pays ``software_s`` per kernel plus ``software_per_stream_s`` for
    each off-chip stream (tensor argument) whose address program it sets up in the
    AGCUs; under HO the AGCUs hold the whole static schedule, programs included, and
    start each kernel after ``hardware_s``. A kernel's argument table holds one descriptor
    of ``argument_bytes_per_stream`` per off-chip stream (its address program's base,
    strides and bounds): what the host writes when the node switches to another model."""

    software_s: float = field(metadata={"ge": 0})
    hardware_s: float = field(metadata={"ge": 0})
    software_per_stream_s: float = field(default=0.0, metadata={"ge": 0})
    argument_bytes_per_stream: float = field(default=0.0, metadata={"ge": 0})


@dataclass(frozen=True)
class RduSocket:
    dies: int = field(metadata=positive())
    pcu: PcuSpec
    pmu: PmuSpec
    agcu: AgcuSpec
    rdn: RdnSpec
    d2d: Link
    hbm: MemoryTier
    ddr: MemoryTier


@dataclass(frozen=True)
class RduLinks:
    p2p: Fabric        # socket to socket, per socket, all ports together; used by collectives
    pcie: Link         # host to socket


@dataclass(frozen=True)
class RduNode:
    sockets: int = field(metadata=positive())
    host_dram: MemoryTier


@dataclass(frozen=True)
class RduArch(CostBlocks):
    """An SN40L-style node (the machine interface: rdusim.config.machine.Machine)."""

    KIND: ClassVar[ArchKind] = ArchKind.RDU
    DEVICE: ClassVar[str] = "socket"
    LAUNCH_MODES: ClassVar[tuple[LaunchMode, ...]] = (LaunchMode.SOFTWARE, LaunchMode.HARDWARE)
    DEFAULT_STACK: ClassVar[str] = "sambanova"

    name: str
    kind: ArchKind
    description: str
    node: RduNode
    socket: RduSocket
    links: RduLinks
    launch: RduLaunch
    collectives: CollectiveSpec      # the runtime's collective primitives over links.p2p
    host_cpu: Optional[HostCpu] = None     # the host CPU as a device (rdusim.config.hostcpu); None: not described
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), compare=False,
                                       metadata={"internal": True})

    def __post_init__(self) -> None:
        check_collectives(self.links.p2p, self.collectives, self.node.sockets, "links.p2p", "collectives")

    # ---- the machine interface (rdusim.config.machine) ----
    @property
    def fabric_bytes_per_s(self) -> float:
        """What one device can send to its peers per second, all ports (0: no fabric)."""
        return self.links.p2p.bandwidth_bytes_per_s

    @property
    def host_link_bytes_per_s(self) -> float:
        """One device's link to the host, per direction."""
        return self.links.pcie.bandwidth_bytes_per_s

    @property
    def devices_per_node(self) -> int:
        return self.node.sockets

    @property
    def device_hbm(self) -> MemoryTier:
        return self.socket.hbm

    @property
    def spill_tier(self) -> Optional[MemoryTier]:
        """DDR: the compiler places what HBM cannot hold there; CoE experts live there."""
        return self.socket.ddr

    @property
    def host_dram(self) -> MemoryTier:
        return self.node.host_dram

    @property
    def max_tp(self) -> int:
        span = self.collectives.span
        return self.node.sockets if span is None else span.max_ranks

    def _per_cycle(self, dtype: DType) -> Optional[float]:
        pcu = self.socket.pcu
        return {DType.BF16: pcu.flops_per_lane_stage_per_cycle,     # PCUs: FP32/BF16/INT32 (no FP16)
                DType.FP8_E4M3: pcu.fp8_flops_per_lane_stage_per_cycle,
                DType.INT8: pcu.int8_ops_per_lane_stage_per_cycle}.get(dtype)

    def native_rate(self, dtype: DType) -> Optional[float]:
        """Peak dense rate of one socket's PCUs at ``dtype`` (None: not computed natively)."""
        per_cycle = self._per_cycle(dtype)
        if per_cycle is None:
            return None
        pcu = self.socket.pcu
        return pcu.count * pcu.lanes * pcu.stages * per_cycle * pcu.clock_hz

    def at_compute(self, dtype: DType) -> "RduArch":
        """The socket with its PCU rate at ``dtype`` (bf16/fp16: unchanged)."""
        if dtype in (DType.BF16, DType.FP16):
            return self
        per_cycle = self._per_cycle(dtype)
        if per_cycle is None:
            raise ValueError(f"{self.name} has no native {dtype.value} rate")
        pcu = dataclasses.replace(self.socket.pcu, flops_per_lane_stage_per_cycle=per_cycle)
        return dataclasses.replace(self, socket=dataclasses.replace(self.socket, pcu=pcu))

    # ---- derived totals (computed, never typed in) ----
    @property
    def peak_flops_per_s_per_socket(self) -> float:
        return self.socket.pcu.count * self.socket.pcu.flops_per_s

    @property
    def sram_bytes_per_socket(self) -> float:
        return self.socket.pmu.count * self.socket.pmu.capacity_bytes

    @property
    def hbm_bytes_per_node(self) -> float:
        return self.node.sockets * self.socket.hbm.capacity_bytes

    @property
    def ddr_bytes_per_node(self) -> float:
        return self.node.sockets * self.socket.ddr.capacity_bytes

    @property
    def ridge_flops_per_byte(self) -> float:
        """Peak FLOP rate over peak HBM bandwidth, per socket."""
        return self.peak_flops_per_s_per_socket / self.socket.hbm.bandwidth_bytes_per_s

    def derived(self) -> dict[str, float]:
        return {**self._derived(), **(self.host_cpu.derived() if self.host_cpu else {})}

    def _derived(self) -> dict[str, float]:
        return {
            "peak_flops_per_s_per_socket": self.peak_flops_per_s_per_socket,
            "peak_flops_per_s_per_node": self.peak_flops_per_s_per_socket * self.node.sockets,
            "sram_bytes_per_socket": self.sram_bytes_per_socket,
            "hbm_bytes_per_node": self.hbm_bytes_per_node,
            "ddr_bytes_per_node": self.ddr_bytes_per_node,
            "hbm_bandwidth_bytes_per_s_per_node": self.node.sockets * self.socket.hbm.bandwidth_bytes_per_s,
            "ddr_bandwidth_bytes_per_s_per_node": self.node.sockets * self.socket.ddr.bandwidth_bytes_per_s,
            "agcu_bandwidth_bytes_per_s_per_socket": self.socket.agcu.count * self.socket.agcu.bandwidth_bytes_per_s,
            "pmu_bandwidth_bytes_per_s_per_socket": self.socket.pmu.count * self.socket.pmu.bandwidth_bytes_per_s,
            "ridge_flops_per_byte": self.ridge_flops_per_byte,
        }
