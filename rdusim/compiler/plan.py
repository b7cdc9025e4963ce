"""The compiled plan: kernels made of pipeline stages, with their allocations and traffic.

A :class:`Plan` is what :func:`rdusim.compiler.compile` returns. It is immutable and
contains only numbers the engine needs (no reference back to the graph), so two
kernels with the same :attr:`Kernel.signature` simulate identically and the engine
simulates each signature once. Signatures are derived (:func:`rdusim.cache.content_key`
over every field), except fields marked ``metadata={"key": False}``: names, which the
simulation never reads.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Mapping

from rdusim.cache import content_key
from rdusim.config.policy import FusionPolicy
from rdusim.derived import derived

_NAME = {"key": False}      # names a kernel; the simulation never reads it


class StageKind(enum.Enum):
    COMPUTE = "compute"        # PCUs doing FLOPs (GEMM on the systolic array, vector work)
    MOVE = "move"              # pure data movement through PMUs (gather, layout pass, cache append)
    COLLECTIVE = "collective"  # all-reduce / all-gather streamed over the P2P links


class Tier(enum.Enum):
    HBM = "hbm"
    DDR = "ddr"
    HOST = "host"


@dataclass(frozen=True)
class Stream:
    """An off-chip read or write of one stage, through AGCUs."""

    tier: Tier
    write: bool
    nbytes: float
    resident: bool = False           # read once before the stage's first tile, held in PMUs
    agcus: float = 1.0               # AGCUs serving this stream (a share when streams outnumber them)


@dataclass(frozen=True)
class Collective:
    """A collective op streamed by a stage: algorithm-independent description."""

    kind: str                        # "allreduce" | "allgather"
    message_bytes: float             # bytes of the full tensor on one rank
    ranks: int


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: one op mapped onto a group of PCUs and its input buffers.
    Its op's name is ``Kernel.ops[i]`` (stages are nameless so repeated layers share them)."""

    kind: StageKind
    flops: float
    compute_s: float                 # time for all its tiles at its PCU allocation (0 for move/collective)
    pcus: int
    pmus: int                        # PMUs for its input buffers and resident operands
    pmus_bandwidth: int              # of which serve bandwidth (operand feed to the PCUs)
    in_bytes: float                  # bytes read by the stage (edges + streams)
    inputs: tuple[int, ...] = ()     # producer stage indices (edges within the kernel)
    edge_bytes: tuple[float, ...] = ()   # bytes over each input edge
    edge_d2d: tuple[bool, ...] = ()      # the edge crosses the die-to-die link
    streams: tuple[Stream, ...] = ()
    collective: Collective | None = None
    die: int = 0


@dataclass(frozen=True)
class Kernel:
    name: str = field(metadata=_NAME)
    ops: tuple[str, ...] = field(metadata=_NAME)
    stages: tuple[Stage, ...]
    layer: int = field(default=-1, metadata=_NAME)
    passes: int = 1                  # >1 when resident operands exceed PMU capacity (re-streamed)
    buffer_depth: int = 2            # tiles each stage buffer holds (execution.buffer_depth)

    @derived
    def signature(self):
        """Everything that determines the kernel's simulated behaviour (every field but
        the names): the content key of the kernel."""
        return content_key(self)

    @derived
    def flops(self) -> float:
        return sum(s.flops for s in self.stages)

    def stage_name(self, i: int) -> str:
        return self.ops[i]

    def renamed(self, name: str, ops: tuple[str, ...], layer: int | None = None) -> "Kernel":
        """This kernel under other names (a repeated layer's copy). Names are not content:
        the values worked out from the content (the content key and every derived total,
        worked out here if they were not yet) are handed to the copy instead of being worked
        out again for each copy. Built as :func:`dataclasses.replace` would (a frozen
        dataclass without ``__post_init__``: its fields and nothing else), without its cost."""
        d = self.__dict__
        for attr in _DERIVED:
            if attr not in d:
                getattr(self, attr)
        k = object.__new__(Kernel)
        k.__dict__.update(d)
        k.__dict__.update(name=name, ops=ops, layer=self.layer if layer is None else layer)
        return k

    @derived
    def pcus(self) -> int:
        return sum(s.pcus for s in self.stages)

    @derived
    def pmus(self) -> int:
        return sum(s.pmus for s in self.stages)

    @derived
    def agcus(self) -> int:
        return sum(st.agcus for s in self.stages for st in s.streams)

    @derived
    def streams(self) -> int:
        """Off-chip streams (tensor arguments with an address program in the AGCUs)."""
        return sum(len(s.streams) for s in self.stages)

    @derived
    def is_collective_only(self) -> bool:
        return all(s.kind == StageKind.COLLECTIVE for s in self.stages)

    def bytes_by_tier(self) -> dict[str, float]:
        """Off-chip bytes read + written, per tier (re-streamed passes included)."""
        out: dict[str, float] = {}
        for s in self.stages:
            for st in s.streams:
                mult = 1 if (st.resident or st.write) else self.passes
                out[st.tier.value] = out.get(st.tier.value, 0.0) + st.nbytes * mult
        return out

    @derived
    def d2d_bytes(self) -> float:
        return sum(b for s in self.stages for b, x in zip(s.edge_bytes, s.edge_d2d) if x)


_DERIVED = tuple(name for name, v in vars(Kernel).items() if isinstance(v, derived))


@dataclass(frozen=True)
class Plan:
    graph: str
    policy: FusionPolicy
    tiles: int
    kernels: tuple[Kernel, ...]
    placement: Mapping[str, str] = field(default_factory=dict)   # external tensor -> tier

    @property
    def flops(self) -> float:
        return sum(k.flops for k in self.kernels)

    def bytes_by_tier(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for k in self.kernels:
            for t, b in k.bytes_by_tier().items():
                out[t] = out.get(t, 0.0) + b
        return out

    @property
    def unique_signatures(self) -> int:
        return len({k.signature for k in self.kernels})
