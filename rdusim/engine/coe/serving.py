"""Serving CoE batches on one node, in SimPy.

For each batch: run the router over all its prompts; then, for each distinct expert
chosen (in order of first appearance), switch it into HBM if it is not resident
(evicting by the cache policy) and run it on its prompts (prefill + decode). With
``prefetch`` the next expert's copy starts while the current expert runs.

Copies are flows on the node's switch network (rdusim.engine.coe.switching): every
device loads its shard at once over every resource on its path (DDR or host DRAM, AGCUs
or host link + PCIe, HBM write).

Prefetch is not free: a copy landing in HBM while an expert runs takes HBM bandwidth
from it. The expert's kernels stream HBM for a fraction ``phi`` of its run
(``expert_hbm_fraction``; 1.0, every moment HBM-bound, when the study does not say).
Whenever they do, HBM is shared max-min fairly between the kernels (which want all of
it) and the copy (which wants far less than half, its rate set by DDR or PCIe): the copy
keeps its rate and the kernels lose the HBM time its bytes take. So an expert whose run
overlaps a copy that writes ``b`` bytes into one device's HBM runs ``phi x b / B`` longer
(``B`` the achievable HBM bandwidth; the longest device counts, and the bytes written
during that extension count again). Each batch records this as ``hbm_contention_s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import sub
from typing import Callable, Sequence

import numpy as np

from rdusim.config.arch import ArchSpec
from rdusim.config.workload_coe import CachePolicy
from rdusim.engine.coe.cache import ExpertCache
from rdusim.engine.coe.batches import BatchTable, BatchTables
from rdusim.engine.coe.outcome import CacheOutcome, cache_outcome
from rdusim.engine.coe.records import BatchRecord  # noqa: F401  (re-exported)
from rdusim.engine.coe.switching import (hbm_bandwidth_bytes_per_s, hbm_link, lone_switch_s, shard_copier,
                                         switch_network)
from rdusim.engine.evaluation import Evaluation, current


@dataclass(frozen=True)
class ServingSetup:
    arch: ArchSpec
    devices: int                          # sockets/GPUs each model is sharded over
    experts: int
    slots: int                            # expert slots in HBM
    expert_bytes: float
    policy: CachePolicy
    prefetch: bool
    router_s: Callable[[int], float]      # prompts in the batch -> router time
    expert_s: Callable[[int], float]      # prompts on one expert -> its prefill + decode time
    hottest: tuple[int, ...]              # experts by expected popularity (warm start, pinning)
    # prompts on one expert -> fraction of its run its kernels stream HBM (None: 1.0, all of it)
    expert_hbm_fraction: Callable[[int], float] | None = None


def serve(setup: ServingSetup, routes: Sequence[np.ndarray], *, trace: list | None = None,
          outcome: CacheOutcome | None = None) -> tuple[BatchRecord, ...]:
    """Serve the batches back to back; one record per batch (:func:`serve_table`)."""
    return serve_table(setup, routes, trace=trace, outcome=outcome).records()


def serve_table(setup: ServingSetup, routes: Sequence[np.ndarray], *, trace: list | None = None,
                outcome: CacheOutcome | None = None) -> BatchTable:
    """Serve the batches back to back; a column per record field. Without prefetch nothing ever
    overlaps a copy (a batch waits for each copy it starts, and batches run one after
    another), so every copy runs on idle links and takes the lone switch time, and no copy
    takes HBM from an expert: :func:`serve_sequential` evaluates that exactly without
    events (``rdusim.engine.evaluation.reference()`` selects the SimPy processes).
    ``outcome``: the cache's hits and misses on ``routes`` when the caller already has them."""
    if not setup.prefetch and current() == Evaluation.CLOSED_FORM:
        return sequential_table(setup, routes, trace=trace, outcome=outcome)
    return events_table(setup, routes, trace=trace)


def setup_outcome(setup: ServingSetup, routes: Sequence[np.ndarray]) -> CacheOutcome:
    """What ``setup``'s expert cache does with ``routes`` (no timing involved)."""
    return cache_outcome(setup.slots, setup.policy, setup.hottest, routes)


def serve_sequential(setup: ServingSetup, routes: Sequence[np.ndarray], *, trace: list | None = None,
                     outcome: CacheOutcome | None = None) -> tuple[BatchRecord, ...]:
    """:func:`serve_events` without prefetch, in closed form (:func:`sequential_table`)."""
    return sequential_table(setup, routes, trace=trace, outcome=outcome).records()


def sequential_table(setup: ServingSetup, routes: Sequence[np.ndarray], *, trace: list | None = None,
                     outcome: CacheOutcome | None = None) -> BatchTable:
    """:func:`serve_events` without prefetch, in closed form (equal within float rounding:
    a copy on idle links lasts the lone switch time wherever it starts, so a batch takes
    router + misses x lone switch + the sum of its experts' runs, and starts when the one
    before it ends)."""
    if outcome is None:
        outcome = setup_outcome(setup, routes)
    table = sequential_replications(setup, outcome, 1).replication(0)
    if trace is not None:
        copy_s = lone_switch_s(setup.arch, setup.devices, setup.expert_bytes)
        per_n = _expert_times(setup, outcome.count_histogram)
        _trace_sequential(trace, outcome, table.start_s, table.router_s, copy_s, per_n)
    return table


def sequential_replications(setup: ServingSetup, outcome: CacheOutcome, replications: int) -> BatchTables:
    """:func:`sequential_table` of ``replications`` routings at once: ``outcome`` holds
    their batches one after another (:meth:`CacheOutcome.concat`), each replication
    starting at time 0."""
    copy_s = lone_switch_s(setup.arch, setup.devices, setup.expert_bytes)
    sizes, which = outcome.batch_sizes
    router = np.array([setup.router_s(n) for n in sizes], dtype=float)[which]
    hist = outcome.count_histogram
    misses = outcome.misses
    switch = misses * copy_s
    expert = hist @ _expert_times(setup, hist)
    latency = router + switch + expert
    shape = (replications, len(latency) // replications)
    start = (np.cumsum(latency.reshape(shape), axis=1) - latency.reshape(shape)).reshape(-1)
    batch = np.tile(np.arange(shape[1]), replications)
    return BatchTables(replications, BatchTable(
        batch, outcome.prompt_counts, outcome.distinct, outcome.hits, misses, router, switch, expert,
        latency, np.zeros(len(latency)), misses * setup.expert_bytes, start))


def _expert_times(setup: ServingSetup, hist: np.ndarray) -> np.ndarray:
    """An expert's run for each number of prompts that some batch puts on one expert."""
    used = hist.any(axis=0)
    return np.array([setup.expert_s(n) if used[n] else 0.0 for n in range(hist.shape[1])])


def _trace_sequential(trace: list, outcome: CacheOutcome, start: np.ndarray, router: np.ndarray,
                      copy_s: float, per_n: np.ndarray) -> None:
    for b, t0 in enumerate(start.tolist()):
        now = t0 + router[b]
        _span(trace, "router", t0, now, "router")
        for e, n, hit in zip(outcome.order[b], outcome.counts[b], outcome.hit[b]):
            if not hit:
                _span(trace, f"switch expert {e}", now, now + copy_s, "switch")
                now += copy_s
            _span(trace, f"expert {e} x{n}", now, now + per_n[n], "expert")
            now += per_n[n]


def serve_events(setup: ServingSetup, routes: Sequence[np.ndarray], *,
                 trace: list | None = None) -> tuple[BatchRecord, ...]:
    """The SimPy model of serving (the reference): copies as flows, prefetch contention."""
    return events_table(setup, routes, trace=trace).records()


def events_table(setup: ServingSetup, routes: Sequence[np.ndarray], *, trace: list | None = None) -> BatchTable:
    """:func:`serve_events` as columns (what :func:`serve_table` gives its callers)."""
    rows = _serve_rows(setup, routes, trace)
    if not rows:
        return BatchTable.from_records(())
    return BatchTable(*(np.array(column) for column in zip(*rows)))


def _serve_rows(setup: ServingSetup, routes: Sequence[np.ndarray], trace: list | None) -> list[tuple]:
    """One tuple of :class:`BatchRecord`'s fields per batch, from the SimPy model."""
    import simpy

    env = simpy.Environment()
    net, paths = switch_network(env, setup.arch, setup.devices)
    hbm = [hbm_link(setup.arch)(d) for d in range(setup.devices)]
    hbm_bw = hbm_bandwidth_bytes_per_s(setup.arch)
    cache = ExpertCache(setup.slots, setup.policy, hottest=setup.hottest, warm=setup.hottest)
    hit = cache.hit
    rows: list[tuple] = []
    timeout, expert_bytes, prefetch = env.timeout, setup.expert_bytes, setup.prefetch
    hbm_bytes = net.bytes_meter(hbm)
    copy = shard_copier(net, paths, expert_bytes)      # copy(label): an expert's shards start
    runs = _PerPrompts(setup)
    router_of, run_of = runs.router, runs.of

    def admit(e: int, label: str):
        """Look ``e`` up; on a miss (the cache counts hits and misses) start its copy."""
        return None if hit(e) else copy(label)

    def serve_all():
        """The batches one after another, in one process (no generator delegation per event).
        ``now`` is read once after each wait (nothing else moves the clock)."""
        now = env.now
        for i, prompts in enumerate(routes):
            t0 = now
            order, counts = _distinct_in_order(prompts)
            yield timeout(router_of(len(prompts)))
            now = env.now
            router = now - t0
            if trace is not None:
                _span(trace, "router", t0, now, "router")
            hits0, misses0 = cache.hits, cache.misses
            switch = expert = contention = 0.0
            prefetched: dict[int, "simpy.Event | None"] = {}
            last = len(order) - 1
            for k, (e, n) in enumerate(zip(order, counts)):
                pending = prefetched.pop(e) if e in prefetched else admit(e, f"b{i}.e{e}")
                if pending is not None:
                    ts = now
                    yield pending
                    now = env.now
                    switch += now - ts
                    if trace is not None:
                        _span(trace, f"switch expert {e}", ts, now, "switch")
                if prefetch and k < last:
                    nxt = order[k + 1]
                    prefetched[nxt] = admit(nxt, f"b{i}.e{nxt}.prefetch")
                te = now
                # the expert's run, stretched by the HBM time copies took from it meanwhile
                wait, phi = run_of(n)
                before = hbm_bytes()
                for _ in range(_MAX_ROUNDS):
                    yield timeout(wait)
                    after = hbm_bytes()     # (and the next round's before: nothing runs in between)
                    if after is before:     # the same tuple: no byte moved
                        break
                    wait = phi * max(map(sub, after, before)) / hbm_bw
                    if wait <= 0:
                        break
                    contention += wait
                    before = after
                else:
                    yield timeout(wait)
                now = env.now
                expert += now - te
                if trace is not None:
                    _span(trace, f"expert {e} x{n}", te, now, "expert")
            misses = cache.misses - misses0
            rows.append((i, len(prompts), len(order), cache.hits - hits0, misses, router, switch, expert, now - t0,
                         contention, misses * expert_bytes, t0))

    env.process(serve_all())
    env.run()
    return rows


_MAX_ROUNDS = 50    # a copy takes a small share of HBM, so the stretch converges in a few rounds


class _PerPrompts:
    """The setup's router and expert times (and the expert's HBM fraction) for each number
    of prompts, asked of its functions once per number in one serving run."""

    __slots__ = ("setup", "_router", "_expert")

    def __init__(self, setup: ServingSetup):
        self.setup = setup
        self._router: dict[int, float] = {}
        self._expert: dict[int, tuple[float, float]] = {}

    def router(self, n: int) -> float:
        t = self._router.get(n)
        if t is None:
            t = self._router[n] = self.setup.router_s(n)
        return t

    def of(self, n: int) -> tuple[float, float]:
        """(the expert's run on ``n`` prompts, the fraction of it its kernels stream HBM)."""
        got = self._expert.get(n)
        if got is None:
            s = self.setup
            phi = 1.0 if s.expert_hbm_fraction is None else s.expert_hbm_fraction(n)
            got = self._expert[n] = (s.expert_s(n), phi)
        return got


def _distinct_in_order(prompts: np.ndarray) -> tuple[list[int], list[int]]:
    if len(prompts) == 1:       # (a batch of one prompt: the study's worst case for serving)
        return prompts.tolist(), [1]
    order: list[int] = []
    counts: dict[int, int] = {}
    for e in prompts.tolist():
        if e not in counts:
            order.append(e)
            counts[e] = 0
        counts[e] += 1
    return order, [counts[e] for e in order]


def _span(trace: list | None, name: str, start: float, end: float, tid: str) -> None:
    if trace is not None:
        trace.append((name, start, end, tid))
