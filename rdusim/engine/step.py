"""StepResult: one step (one pass of a graph) simulated on one machine.

Both engines return it from ``simulate_step``:
  rdusim.engine.rdu.step.simulate_step(arch: RduArch, graph, *, fusion, launch, tp) -> StepResult
  rdusim.engine.gpu.step.simulate_step(arch: GpuArch, graph, *, fusion, launch, tp) -> StepResult
``graph`` is the OpGraph one TP rank runs (built with the same ``tp``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence


@dataclass(frozen=True)
class StepResult:
    time_s: float                          # wall time of the step, launches and collectives included
    kernels: int                           # kernels launched
    flops: float                           # FLOPs executed per device
    bytes_by_tier: Mapping[str, float]     # off-chip bytes per device by tier ("hbm", "ddr", "host")
    breakdown_s: Mapping[str, float]       # time split by engine.inference.BREAKDOWN_KEYS; sums to time_s
    util: Mapping[str, float]              # 0..1: "pcu", "pmu", "hbm_bw" (RDU); "sm", "hbm_bw" (GPU)
    records: Sequence[Mapping[str, Any]] = field(default=())   # one flat row per kernel (a tuple or Records)
    trace: tuple[Mapping[str, Any], ...] = field(default=(), compare=False)  # Chrome trace events
    # launch the step pays once however many passes of it a device-side loop runs (RDU under
    # hardware orchestration: the host handing the schedule over); 0 where every kernel is
    # launched by itself
    loop_launch_s: float = 0.0
    # loading the step's program when the node switches to its model (RDU: its kernels'
    # argument tables over the host link); 0 where kernels stay resident and take their
    # arguments at launch (GPU)
    program_load_s: float = 0.0
    # bytes per device over its links ("fabric": sent to peers by collectives; "host_link"):
    # with flops and bytes_by_tier, the activity rdusim.energy charges
    link_bytes: Mapping[str, float] = field(default_factory=dict)

    @property
    def oi_flops_per_byte(self) -> float:
        moved = sum(self.bytes_by_tier.values())
        return self.flops / moved if moved else float("inf")


class Records(Sequence):
    """A step's per-kernel records, made when first read: a study that reads few of the
    steps it simulates (the CoE study reads one decode step's of each timing) does not
    build thousands of rows it never writes. ``make`` must depend only on values that do
    not change (a step's kernels, their timings and its schedule). Reads, compares, prints
    and pickles as the tuple it stands for."""

    __slots__ = ("_make", "_rows")

    def __init__(self, make: Callable[[], Iterable[Mapping[str, Any]]]) -> None:
        self._make: Callable[[], Iterable[Mapping[str, Any]]] | None = make
        self._rows: tuple[Mapping[str, Any], ...] | None = None

    def rows(self) -> tuple[Mapping[str, Any], ...]:
        if self._rows is None:
            self._rows = tuple(self._make())
            self._make = None
        return self._rows

    def __len__(self) -> int:
        return len(self.rows())

    def __getitem__(self, i):
        return self.rows()[i]

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        return iter(self.rows())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Records):
            other = other.rows()
        return self.rows() == other if isinstance(other, tuple) else NotImplemented

    __hash__ = None      # as a tuple of dicts: unhashable

    def __repr__(self) -> str:
        return repr(self.rows())

    def __reduce__(self):
        return tuple, (self.rows(),)


def timed_once(kernels: Sequence[Any], time_of: Callable[[Any], Any]) -> list:
    """``time_of(k.work)`` for each kernel, computed once per work object (a repeated
    layer's kernels share theirs): the kernel-stream families' per-kernel timings."""
    by_work: dict[int, Any] = {}
    out = []
    for k in kernels:
        t = by_work.get(id(k.work))
        if t is None:
            t = by_work[id(k.work)] = time_of(k.work)
        out.append(t)
    return out
