"""What the continuous-batching loop (:mod:`rdusim.serve.continuous`) runs on besides its
scheduling: the garbage collector paused over the loop, and a decode run's step times."""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block: a serving loop makes no reference
    cycles (its garbage goes by reference counting), and the collector's passes over its
    10^5 live requests cost more than the loop itself."""
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def run_times(costs):
    """``(batch, context, steps, start, until) -> (times, ends)`` of a decode run: the step
    model's plain-Python run where it has one, else its vectorised curve (a test's fake)."""
    fast = getattr(costs, "decode_run_list", None)
    if fast is not None:
        return fast

    def run(batch: int, context: float, steps: int, start: float, until: float):
        times = costs.decode_run_s(batch, context, steps)
        ends = start + times.cumsum()
        k = min(steps, int(ends.searchsorted(until, side="left")) + 1)
        return times[:k].tolist(), ends[:k].tolist()

    return run
