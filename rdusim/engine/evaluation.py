"""Which evaluation the engines use where an exact closed form exists beside the SimPy model.

The SimPy processes are the reference: they are what the model *is*. Where the event
order provably reduces to a recurrence (the GPU host/stream timeline, the RDU launch
schedule: one producer and one consumer in lock step, no shared resource; an expert's
shards switched in at once with nothing else moving: rdusim.engine.fluid), the engines
evaluate that recurrence instead, with the same floating-point operations in the same
order, so the results are bit-identical; property tests check it against the reference
on random inputs. ``with reference():`` makes every call inside it use the SimPy model
(tests compare whole studies both ways).

Ambient state, and why: the choice is a context variable, not an argument, because it
never changes a result (both evaluations are bit-identical, which tests/test_speed_equivalence.py
checks on whole studies): it selects how a number is computed, not which number, and is
set only by tests, benchmarks and the reference comparisons. Anything that changes a
result is an explicit input (a spec, a workload key, an argument).
"""

from __future__ import annotations

import enum
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator


class Evaluation(enum.Enum):
    CLOSED_FORM = "closed_form"    # the exact recurrence (default)
    EVENTS = "events"              # the SimPy processes (the reference)


_CURRENT: ContextVar[Evaluation] = ContextVar("rdusim_evaluation", default=Evaluation.CLOSED_FORM)


def current() -> Evaluation:
    return _CURRENT.get()


@contextmanager
def reference() -> Iterator[None]:
    """Evaluate with the SimPy reference models inside this block."""
    token = _CURRENT.set(Evaluation.EVENTS)
    try:
        yield
    finally:
        _CURRENT.reset(token)
