"""Serving CoE batches on one node, in SimPy.

For each batch: run the router over all its prompts; then, for each distinct expert
chosen (in order of first appearance), switch it into HBM if it is not resident
(evicting by the cache policy) and run it on its prompts (prefill + decode). With
``prefetch`` the next expert's copy starts while the current expert runs.

At most one expert copy is in flight on a node at a time (a copy starts only after the
previous one landed), so every copy sees the same idle links: its duration is simulated
once with the flow model (all devices loading their shards at once, contending on the
links they share) and reused for every switch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import simpy

from rdusim.config.arch import ArchSpec
from rdusim.config.workload_coe import CachePolicy
from rdusim.engine.coe.cache import ExpertCache
from rdusim.engine.coe.switching import lone_switch_s


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


@dataclass(frozen=True)
class BatchRecord:
    batch: int
    prompts: int
    distinct_experts: int
    hits: int
    misses: int
    router_s: float
    switch_s: float        # time the batch waited for expert copies (exposed switching)
    expert_s: float
    latency_s: float
    bytes_copied: float
    start_s: float


def serve(setup: ServingSetup, routes: Sequence[np.ndarray], *, trace: list | None = None) -> tuple[BatchRecord, ...]:
    """Serve the batches back to back; one record per batch."""
    env = simpy.Environment()
    copy_s = lone_switch_s(setup.arch, setup.devices, setup.expert_bytes)
    cache = ExpertCache(setup.slots, setup.policy, hottest=setup.hottest, warm=setup.hottest)
    records: list[BatchRecord] = []

    def admit(e: int, tally: dict, label: str) -> simpy.Event | None:
        """Look ``e`` up in the cache; on a miss start its copy and return the copy event."""
        if cache.access(e).hit:
            tally["hits"] += 1
            return None
        tally["misses"] += 1
        tally["copied"] += setup.expert_bytes
        return env.timeout(copy_s, value=label)

    def run_batch(i: int, prompts: np.ndarray):
        t0 = env.now
        order, counts = _distinct_in_order(prompts)
        yield env.timeout(setup.router_s(len(prompts)))
        router = env.now - t0
        _span(trace, "router", t0, env.now, "router")
        tally = {"hits": 0, "misses": 0, "copied": 0.0, "switch": 0.0, "expert": 0.0}
        prefetched: dict[int, simpy.Event | None] = {}
        for k, (e, n) in enumerate(zip(order, counts)):
            copy = prefetched.pop(e) if e in prefetched else admit(e, tally, f"b{i}.e{e}")
            if copy is not None:
                ts = env.now
                yield copy
                tally["switch"] += env.now - ts
                _span(trace, f"switch expert {e}", ts, env.now, "switch")
            if setup.prefetch and k + 1 < len(order):
                nxt = order[k + 1]
                prefetched[nxt] = admit(nxt, tally, f"b{i}.e{nxt}.prefetch")
            te = env.now
            yield env.timeout(setup.expert_s(n))
            tally["expert"] += env.now - te
            _span(trace, f"expert {e} x{n}", te, env.now, "expert")
        records.append(BatchRecord(i, len(prompts), len(order), tally["hits"], tally["misses"], router,
                                   tally["switch"], tally["expert"], env.now - t0, tally["copied"], t0))

    def run_all():
        for i, prompts in enumerate(routes):
            yield from run_batch(i, prompts)

    env.process(run_all())
    env.run()
    return tuple(records)


def _distinct_in_order(prompts: np.ndarray) -> tuple[list[int], list[int]]:
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
