"""What every machine family's engine answers: the engine half of a machine family.

A family is its schema (``rdusim/config/arch_<family>.py``, the machine interface
:class:`rdusim.config.machine.Machine`), its engine package (``rdusim/engine/<family>/``)
with one object implementing :class:`Family`, and one line in each registration table
(``rdusim.config.arch.SCHEMAS``, ``rdusim.engine.families.FAMILIES``). Everything above
the families -- the step model, CoE switching, pipeline parallelism, the studies -- calls
these methods and never asks which family a platform is:

- ``model_step``: one step of a deployment (prefill, decode, a speculative verify step),
  the stack's host work included -- the engine behind :class:`rdusim.engine.stepper.StepModel`;
- ``graph_step``: one step of a given op graph (a traced step, tests);
- ``collective``: one collective of ``ranks`` devices as the machine's library runs it
  over its fabric;
- ``copy_links``: the links an expert copy crosses into the devices' HBM (name,
  bandwidth, latency) and each device's path over them (the flow network's input);
  the HBM link of device ``i`` is always named ``hbm<i>`` (:func:`hbm_link`);
- ``in_place``: where an expert whose weights are not in HBM runs without copying them
  (:class:`InPlace`: the host CPU over host DRAM, the SN40L's RDUs reading their DDR), or None;
- ``kernel_ops``: the op names of each kernel a step of a graph runs as, cut exactly as
  the timing cuts it (what the memory check reads: rdusim.memory, rdusim.workspace);
- ``fusion_runs`` / ``fusion_speedups`` / ``bench_steps`` / ``step_tracer``: what the
  fusion study runs on the family (its modes) and how.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol, runtime_checkable

from rdusim.config.arch_common import ArchKind
from rdusim.config.policy import FusionPolicy, LaunchMode
from rdusim.engine.collectives import CollectiveCost, CollectiveOp
from rdusim.engine.step import StepResult
from rdusim.graph.opgraph import OpGraph
from rdusim.graph.phase import Phase
from rdusim.graph.tensor import DType

if TYPE_CHECKING:      # annotations only
    from rdusim.config.deployment import Deployment
    from rdusim.tracing import TraceBuilder

Memo = Callable[[tuple, Callable[[], object]], object]
CopyLink = tuple[str, float, float]          # (name, bandwidth bytes/s, latency s)


def hbm_link(device: int) -> str:
    """The name of device ``device``'s HBM on a copy network: copies write into it, kernels
    read from it (every family names it so)."""
    return f"hbm{device}"


@dataclass(frozen=True)
class FusionRun:
    """One mode of the fusion study on a family: its name, how the graph is cut, how kernels launch."""

    mode: str
    fusion: FusionPolicy
    launch: LaunchMode


@dataclass
class BenchGraphs:
    """A fusion-study step's graph (one TP rank's, at ``tp``) as a family may ask for it: cut
    to its first ``n`` decoder layers (:meth:`cut`; a family repeats a layer to stand for
    the rest), or whole (:meth:`whole`, built once and shared by the platforms of one TP
    degree; :attr:`built` is it once some platform built it)."""

    phase: Phase
    tp: int
    layers: int                              # decoder layers of the step (0: not a layered model)
    build: Callable[[Optional[int]], OpGraph]   # layers -> the graph (None: the whole step)
    tiles: int                               # execution.tiles
    buffering: Any                           # execution.buffering (rdusim.compiler.placement.Buffering)
    built: Optional[OpGraph] = field(default=None)
    _cuts: dict = field(default_factory=dict, repr=False, compare=False)

    def cut(self, layers: int) -> OpGraph:
        """The step cut to ``layers`` decoder layers (built once, shared by the callers)."""
        if layers not in self._cuts:
            self._cuts[layers] = self.build(layers)
        return self._cuts[layers]

    def whole(self) -> OpGraph:
        if self.built is None:
            self.built = self.build(None)
        return self.built


class InPlaceWhere(enum.Enum):
    """Where an op runs in place (:class:`InPlace`)."""

    CPU = "cpu"          # the host CPU, over host DRAM
    DDR = "ddr"          # the device itself, reading its spill tier (the SN40L's DDR)


@dataclass(frozen=True)
class InPlace:
    """Running an op where its weights already are (rdusim.engine.offload): ``where``, the achievable rate on weights of the op's format (FLOP/s), the achievable
    bandwidth it reads them at, a fixed cost per call, and the link the op's activations cross
    there and back (None: they stay on the device)."""

    where: InPlaceWhere
    rate_flops_per_s: float
    weight_bandwidth_bytes_per_s: float
    call_s: float = 0.0
    activation_link: Optional[Any] = None         # rdusim.config.arch_common.Link

    def time_s(self, flops: float, weight_bytes: float, activation_bytes: float) -> float:
        """One call: its fixed cost, the roofline of its FLOPs and weight reads, its activations
        over the link each way (``activation_bytes`` there, as many back)."""
        t = self.call_s + max(flops / self.rate_flops_per_s, weight_bytes / self.weight_bandwidth_bytes_per_s)
        if self.activation_link is not None:
            t += 2 * self.activation_link.transfer_time_s(activation_bytes)
        return t


@runtime_checkable
class Family(Protocol):
    kind: ArchKind
    schema: type

    def model_step(self, dep: "Deployment", phase: Phase, batch: int, seq: int, host_s: float, memo: Memo,
                   new_tokens: int = 1) -> StepResult: ...

    def packed_step(self, dep: "Deployment", mix: tuple, host_s: float, memo: Memo) -> Optional[StepResult]:
        """The prefill step of the sequences of ``mix`` (:data:`rdusim.engine.varlen.Mix`:
        prompts, or chunks over a cached context) packed into one variable-length batch, or
        None (the family's engine times uniform batches only)."""
        ...

    def varlen_time(self, dep: "Deployment", memo: Memo) -> Any:
        """Seconds of the kernels of the deployment's prefill steps that change with the mix of
        sequences, as a function of the mix (:meth:`rdusim.engine.varlen.KernelStream.varlen_time`), or None
        (packed steps take their attention from the engine's uniform batches)."""
        ...

    def graph_step(self, arch, graph: OpGraph, *, fusion: FusionPolicy, launch: LaunchMode, tp: int,
                   host_s: float = 0.0, trace: bool = False) -> StepResult: ...

    def collective(self, arch, op: CollectiveOp, ranks: int, message_bytes: float) -> CollectiveCost: ...

    def kernel_ops(self, arch, graph: OpGraph, fusion: FusionPolicy, execution: Any) -> tuple[tuple[str, ...], ...]:
        """The op names of each kernel of a step of ``graph``, in launch order, as the family's
        timing cuts it (ops in no kernel are views); ``execution``: the run's ExecutionConfig."""
        ...

    def copy_links(self, arch, devices: int) -> tuple[list[CopyLink], list[tuple[str, ...]]]: ...

    def in_place(self, arch, weight: DType, devices: int) -> Optional[InPlace]:
        """How an op on weights stored at ``weight``, sharded over ``devices`` devices, runs
        where those weights live when they are not in HBM (None: it cannot)."""
        ...

    def fusion_runs(self, launch: LaunchMode) -> tuple[FusionRun, ...]: ...

    # (key, numerator mode, denominator mode) of each speedup the fusion study reports
    fusion_speedups: tuple[tuple[str, str, str], ...]

    def bench_steps(self, arch, graphs: BenchGraphs, runs: tuple[FusionRun, ...], host_s: float,
                    timeline: Optional[Any] = None) -> dict[str, StepResult]:
        """One step per run of the fusion study; raises rdusim.memory.OutOfMemory when the
        step does not fit. ``timeline``: where traced steps go (``next(mode)`` returns what
        :meth:`step_tracer` made, ``advance(seconds)`` moves past a step), or None."""
        ...

    def step_tracer(self, builder: "TraceBuilder", platform: str, start_s: float, label: str) -> Any:
        """Something :meth:`bench_steps` lays a traced step on, or None (the family draws no
        fusion-study timeline)."""
        ...
