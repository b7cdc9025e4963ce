"""Scheduling points onto worker slots: every task once, a machine's points stay on one slot."""

from __future__ import annotations

import concurrent.futures as cf

from hypothesis import given, settings
from hypothesis import strategies as st

from rdusim.errors import InputError
from rdusim.sweep.executor import Executor, ExecutorSpec, map_affine


class _InlineBackend:
    """Runs each call at submit time; records which slot ran what."""

    def __init__(self, slots):
        self.slots = slots
        self.ran = []          # (slot, task)
        self._order = {}

    def submit(self, fn, arg, slot):
        fut = cf.Future()
        fut.set_result(fn(arg))
        self.ran.append((slot, arg))
        self._order[fut] = len(self._order)
        return fut

    def wait_first(self, futures):
        first = min(futures, key=self._order.get)   # the oldest call finishes first
        return {first}, set(futures) - {first}

    def result(self, fut):
        return fut.result()


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 5), max_size=40), st.integers(1, 4))
def test_every_task_once_and_groups_in_order(groups, slots):
    tasks = list(enumerate(groups))           # (index, group)
    backend = _InlineBackend(slots)
    out = list(map_affine(backend, lambda t: t, tasks, group_of=lambda t: t[1]))
    assert sorted(out) == tasks
    for g in set(groups):                     # each group's tasks start in index order
        seen = [t[0] for _, t in backend.ran if t[1] == g]
        assert seen == sorted(seen)


def test_a_group_stays_on_one_slot_while_others_remain():
    tasks = [(i, i // 4) for i in range(8)]   # two machines, four points each
    backend = _InlineBackend(2)
    list(map_affine(backend, lambda t: t, tasks, group_of=lambda t: t[1]))
    by_slot = {s: {t[1] for slot, t in backend.ran if slot == s} for s in (0, 1)}
    assert by_slot == {0: {0}, 1: {1}}


def test_executor_flags():
    assert ExecutorSpec.from_flags(None, None, None).kind == Executor.LOCAL
    assert ExecutorSpec.from_flags(None, 3, "tcp://h:1") == ExecutorSpec(Executor.DASK, 3, "tcp://h:1")
    assert ExecutorSpec.from_flags("local", 2, None).local_workers == 2
    for bad in (("local", None, "tcp://h:1"), (None, 0, None), (None, -1, None)):
        try:
            ExecutorSpec.from_flags(*bad)
        except InputError:
            continue
        raise AssertionError(f"accepted {bad}")
