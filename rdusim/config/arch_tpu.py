"""A TPU slice as it is built: chips (one TensorCore: MXUs, a vector unit, VMEM, HBM) on a
2D torus of inter-chip interconnect (ICI) links, hosts of a few chips each.

The slice is the machine: ``slice.topology`` (``"4x4"``) is the mesh its chips form, one
of the shapes Google sells (``slice.shapes``). A tensor-parallel group of ``tp`` chips is
laid on the mesh along whole axes (:meth:`TpuArch.mesh_axes`): ``tp`` chips along x when
``tp`` divides x, else all of x times ``tp / x`` along y. The collectives over those axes
are in :mod:`rdusim.engine.tpu.collectives`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar, Mapping, Optional

from rdusim.config.arch_common import ArchKind, Link, MemoryTier, NodeSpan
from rdusim.config.machine_cost import CostBlocks
from rdusim.config.policy import LaunchMode
from rdusim.config.hostcpu import HostCpu
from rdusim.config.strict import positive
from rdusim.graph.tensor import DType


def parse_topology(text: str) -> tuple[int, int]:
    """``"4x8"`` -> (4, 8); ValueError for anything else."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(text)
    return int(parts[0]), int(parts[1])


@dataclass(frozen=True)
class TpuSlice:
    topology: str                       # "XxY": chips along the mesh's x and y axes
    shapes: tuple[str, ...]             # the topologies the chip is sold in

    def __post_init__(self) -> None:
        for i, s in enumerate(self.shapes):
            try:
                parse_topology(s)
            except ValueError:
                raise ValueError(f"shapes[{i}]", "a mesh shape such as '4x8'", s) from None
        if self.topology not in self.shapes:
            raise ValueError("topology", f"one of the published slice shapes {list(self.shapes)}", self.topology)

    @property
    def dims(self) -> tuple[int, int]:
        return parse_topology(self.topology)


@dataclass(frozen=True)
class TpuChip:
    tensor_cores: int = field(metadata=positive())
    mxus_per_core: int = field(metadata=positive())
    mxu_edge: int = field(metadata=positive())             # systolic array edge (128 x 128)
    bf16_flops_per_s: float = field(metadata=positive())   # dense, the whole chip
    vector_flops_per_s: float = field(metadata=positive())  # the vector units (elementwise, softmax, norms)
    vmem_bytes: float = field(metadata=positive())         # on-chip vector memory of a core
    hbm: MemoryTier
    int8_ops_per_s: Optional[float] = field(default=None, metadata=positive())


@dataclass(frozen=True)
class Ici:
    """The chip's inter-chip links: ``ports`` links to its mesh neighbours (two per axis),
    each ``bandwidth_bytes_per_s`` per direction; ``latency_s`` per hop. ``wraparound``:
    each axis closes into a ring (a torus); otherwise an axis is an open line."""

    ports: int = field(metadata=positive())
    bandwidth_bytes_per_s: float = field(metadata=positive())     # one port, one direction
    latency_s: float = field(default=0.0, metadata={"ge": 0})
    efficiency: float = field(default=1.0, metadata={"gt": 0, "le": 1})
    wraparound: bool = True

    def __post_init__(self) -> None:
        if self.ports != 4:
            raise ValueError("ports", "4 (two neighbours on each axis of a 2D mesh)", self.ports)

    @property
    def effective_bandwidth_bytes_per_s(self) -> float:
        return self.bandwidth_bytes_per_s * self.efficiency


@dataclass(frozen=True)
class TpuHost:
    chips_per_host: int = field(metadata=positive())
    dram: MemoryTier                    # one host's memory
    pcie: Link                          # host to one chip, per direction


@dataclass(frozen=True)
class TpuLaunch:
    """The host dispatches a whole step as one compiled XLA program."""

    program_s: float = field(metadata={"ge": 0})


@dataclass(frozen=True)
class TpuKernelModel:
    """How well XLA's fusions use the chip."""

    mxu_efficiency: float = field(metadata={"gt": 0, "le": 1})     # large matmuls, fraction of peak
    vector_efficiency: float = field(metadata={"gt": 0, "le": 1})  # fraction of the vector peak
    row_granularity: int = field(metadata=positive())             # matmul rows padded to this (sublanes)
    min_kernel_s: float = field(metadata={"ge": 0})               # one fusion's start, ramp and tail


@dataclass(frozen=True)
class TpuCollectives:
    """XLA's collectives over ICI: a fixed cost per collective (start, synchronisation)."""

    base_latency_s: float = field(metadata={"ge": 0})
    span: Optional[NodeSpan] = field(default=None, metadata={"internal": True})


@dataclass(frozen=True)
class TpuArch(CostBlocks):
    """A TPU slice (the machine interface: rdusim.config.machine.Machine)."""

    KIND: ClassVar[ArchKind] = ArchKind.TPU
    DEVICE: ClassVar[str] = "chip"
    LAUNCH_MODES: ClassVar[tuple[LaunchMode, ...]] = (LaunchMode.XLA,)
    DEFAULT_STACK: ClassVar[str] = "jetstream"

    name: str
    kind: ArchKind
    description: str
    slice: TpuSlice
    host: TpuHost
    chip: TpuChip
    ici: Ici
    launch: TpuLaunch
    kernel: TpuKernelModel
    collectives: TpuCollectives
    host_cpu: Optional[HostCpu] = None     # the host CPU as a device (rdusim.config.hostcpu); None: not described
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), compare=False,
                                       metadata={"internal": True})

    # ---- the machine interface (rdusim.config.machine) ----
    @property
    def fabric_bytes_per_s(self) -> float:
        """What one device can send to its peers per second, all ports (0: no fabric)."""
        return self.ici.ports * self.ici.bandwidth_bytes_per_s

    @property
    def host_link_bytes_per_s(self) -> float:
        """One device's link to the host, per direction."""
        return self.host.pcie.bandwidth_bytes_per_s

    @property
    def devices_per_node(self) -> int:
        x, y = self.slice.dims
        return x * y

    @property
    def hosts(self) -> int:
        return -(-self.devices_per_node // self.host.chips_per_host)

    @property
    def device_hbm(self) -> MemoryTier:
        return self.chip.hbm

    @property
    def spill_tier(self) -> Optional[MemoryTier]:
        return None

    @property
    def host_dram(self) -> MemoryTier:
        """The slice's hosts' memory together."""
        d, n = self.host.dram, self.hosts
        return dataclasses.replace(d, capacity_bytes=d.capacity_bytes * n, reserved_bytes=d.reserved_bytes * n,
                                   bandwidth_bytes_per_s=d.bandwidth_bytes_per_s * n)

    @property
    def max_tp(self) -> int:
        return self.devices_per_node

    def native_rate(self, dtype: DType) -> Optional[float]:
        c = self.chip
        return {DType.BF16: c.bf16_flops_per_s, DType.INT8: c.int8_ops_per_s}.get(dtype)

    def at_compute(self, dtype: DType) -> "TpuArch":
        if dtype in (DType.BF16, DType.FP16):
            return self
        rate = self.native_rate(dtype)
        if rate is None:
            raise ValueError(f"{self.name} has no native {dtype.value} rate")
        return dataclasses.replace(self, chip=dataclasses.replace(self.chip, bf16_flops_per_s=rate))

    # what the library-fusion kernel cut reads (rdusim.engine.gpu.fusion_rules, XLA's fusions)
    @property
    def on_chip_row_bytes(self) -> float:
        return self.chip.vmem_bytes

    @property
    def elements_per_work_item(self) -> int:
        return self.kernel.row_granularity * self.chip.mxu_edge     # one vector register (8 x 128)

    # ---- the mesh ----
    def mesh_axes(self, tp: int) -> tuple[tuple[int, bool], ...]:
        """The mesh axes a tensor-parallel group of ``tp`` chips spans: (chips along the
        axis, whether they close into a ring), x first. ValueError when ``tp`` cannot be
        laid along whole axes of the slice."""
        x, y = self.slice.dims
        if not 1 <= tp <= x * y:
            raise ValueError(f"tp={tp} needs 1..{x * y} chips of {self.name} ({self.slice.topology})")
        if tp == 1:
            return ()
        if x % tp == 0:
            return ((tp, self.ici.wraparound and tp == x and tp > 2),)
        if tp % x == 0 and y % (tp // x) == 0:
            ny = tp // x
            axes = ((x, self.ici.wraparound and x > 2),)
            return axes + (((ny, self.ici.wraparound and ny == y and ny > 2),) if ny > 1 else ())
        raise ValueError(f"tp={tp} on a {self.slice.topology} slice of {self.name}: a divisor of {x} (along x) or "
                         f"{x} times a divisor of {y} (all of x, part of y)")

    # ---- derived totals ----
    @property
    def ridge_flops_per_byte(self) -> float:
        return self.chip.bf16_flops_per_s / self.chip.hbm.bandwidth_bytes_per_s

    def derived(self) -> dict[str, float]:
        return {**self._derived(), **(self.host_cpu.derived() if self.host_cpu else {})}

    def _derived(self) -> dict[str, float]:
        n = self.devices_per_node
        return {
            "chips": n,
            "hosts": self.hosts,
            "peak_flops_per_s_per_slice": n * self.chip.bf16_flops_per_s,
            "hbm_bytes_per_slice": n * self.chip.hbm.capacity_bytes,
            "hbm_bandwidth_bytes_per_s_per_slice": n * self.chip.hbm.bandwidth_bytes_per_s,
            "ici_bytes_per_s_per_chip_bidirectional": 2 * self.ici.ports * self.ici.bandwidth_bytes_per_s,
            "ridge_flops_per_byte": self.ridge_flops_per_byte,
        }
