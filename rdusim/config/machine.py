"""What every machine description answers: the schema half of a machine family.

A machine family (the SN40L RDU, DGX-style GPUs, TPU slices, ...) is a schema here in
``rdusim/config`` (``arch_<family>.py``: the arch file's shape, every number ``{value,
source}``) and an engine package (``rdusim/engine/<family>``: step cost, collectives over
its fabric, copy paths; :class:`rdusim.engine.family.Family`). Code above the families --
memory checks, stacks, workloads, CoE capacity, studies -- asks a machine only what this
protocol lists, never which family it is:

- ``devices_per_node``: the devices one machine (node, slice) holds, and ``DEVICE``, what
  one of them is called in messages ("socket", "GPU", "chip");
- ``device_hbm``: one device's HBM (models, KV caches and workspace live here);
  ``spill_tier``: the device-attached tier that takes what HBM cannot hold (the SN40L's
  DDR) or None; ``host_dram``: the host memory of the whole machine;
- ``max_tp``: devices one tensor-parallel group may use (the node's, or a cluster's when
  its collectives may span nodes);
- ``LAUNCH_MODES``: the kernel-launch mechanisms its software can use; ``DEFAULT_STACK``:
  the serving stack a platform gets when it names none;
- ``native_rate(dtype)``: the dense tensor rate per device in a number format, or None
  when the device does not compute in it; ``at_compute(dtype)``: the machine as its
  engine sees it when tensor work runs at that format;
- ``host_cpu``: the host CPU as a device ops can run on (rdusim.config.hostcpu), or None;
- ``derived()``: totals computed from the numbers (``rdusim arch show``);
- ``fabric_bytes_per_s`` / ``host_link_bytes_per_s``: what one device sends per second over
  its peer fabric (0: none) and its host link; ``price`` / ``power``: the ``price:`` and
  ``power:`` blocks and ``price_per_device_hour_usd`` / ``price_per_node_hour_usd`` (None:
  no published price), one implementation for every family
  (:class:`rdusim.config.machine_cost.CostBlocks`; energy: :mod:`rdusim.energy`).
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import ClassVar, Mapping, Optional, Protocol, runtime_checkable, TypeVar

from rdusim.config.arch_common import ArchKind, MemoryTier
from rdusim.config.hostcpu import HostCpu
from rdusim.config.policy import LaunchMode
from rdusim.graph.tensor import DType

M = TypeVar("M", bound="Machine")
S = TypeVar("S")


@runtime_checkable
class Machine(Protocol):
    KIND: ClassVar[ArchKind]
    DEVICE: ClassVar[str]
    LAUNCH_MODES: ClassVar[tuple[LaunchMode, ...]]
    DEFAULT_STACK: ClassVar[str]

    name: str
    kind: ArchKind
    description: str
    sources: Mapping[str, str]
    host_cpu: Optional[HostCpu]

    @property
    def devices_per_node(self) -> int: ...

    @property
    def device_hbm(self) -> MemoryTier: ...

    @property
    def spill_tier(self) -> Optional[MemoryTier]: ...

    @property
    def host_dram(self) -> MemoryTier: ...

    @property
    def max_tp(self) -> int: ...

    def native_rate(self, dtype: DType) -> Optional[float]: ...

    def at_compute(self: M, dtype: DType) -> M: ...

    def derived(self) -> dict[str, float]: ...

    @property
    def fabric_bytes_per_s(self) -> float: ...

    @property
    def host_link_bytes_per_s(self) -> float: ...

    @property
    def price_per_device_hour_usd(self) -> Optional[float]: ...

    @property
    def price_per_node_hour_usd(self) -> Optional[float]: ...


def launch_names(modes: tuple[LaunchMode, ...]) -> list[str]:
    """The launch modes as a workload writes them (for messages)."""
    return [m.value for m in modes]


def idealised(spec: S) -> S:
    """``spec`` (an arch or a stack: any frozen spec) with every efficiency 1 and every time
    cost 0: each field named ``*efficiency`` becomes 1.0 and each number named ``*_s`` (a
    latency, launch, floor or host cost; not a rate, ``*_per_s``) 0.0, in nested specs too. Roofline mode
    (:mod:`rdusim.engine.roofline`) runs on what this returns."""
    if not dataclasses.is_dataclass(spec):
        return spec
    changes = {}
    for f in dataclasses.fields(spec):
        if not f.init:
            continue
        v = getattr(spec, f.name)
        if f.name.endswith("efficiency") and isinstance(v, float):
            changes[f.name] = 1.0
        elif f.name.endswith("_s") and not f.name.endswith("_per_s") and isinstance(v, float):   # not a rate
            changes[f.name] = 0.0
        elif dataclasses.is_dataclass(v):
            new = idealised(v)
            if new is not v:
                changes[f.name] = new
        elif isinstance(v, Mapping) and any(dataclasses.is_dataclass(x) for x in v.values()):   # a release's terms
            changes[f.name] = MappingProxyType({k: idealised(x) for k, x in v.items()})
    return dataclasses.replace(spec, **changes) if changes else spec
