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
from typing import Callable, Sequence

import numpy as np
import simpy

from rdusim.config.arch import ArchSpec
from rdusim.config.workload_coe import CachePolicy
from rdusim.engine.coe.cache import ExpertCache
from rdusim.engine.coe.switching import copy_expert, hbm_bandwidth_bytes_per_s, hbm_link, switch_network
from rdusim.engine.transfer import FlowNetwork


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
    hbm_contention_s: float    # expert time lost to prefetch copies writing into HBM (in expert_s)
    bytes_copied: float
    start_s: float


def serve(setup: ServingSetup, routes: Sequence[np.ndarray], *, trace: list | None = None) -> tuple[BatchRecord, ...]:
    """Serve the batches back to back; one record per batch."""
    env = simpy.Environment()
    net, paths = switch_network(env, setup.arch, setup.devices)
    hbm = [hbm_link(setup.arch)(d) for d in range(setup.devices)]
    hbm_bw = hbm_bandwidth_bytes_per_s(setup.arch)
    cache = ExpertCache(setup.slots, setup.policy, hottest=setup.hottest, warm=setup.hottest)
    records: list[BatchRecord] = []

    def admit(e: int, tally: dict, label: str) -> simpy.Event | None:
        """Look ``e`` up in the cache; on a miss start its copy and return the copy event."""
        if cache.access(e).hit:
            tally["hits"] += 1
            return None
        tally["misses"] += 1
        tally["copied"] += setup.expert_bytes
        return copy_expert(env, net, paths, setup.expert_bytes, label)

    def run_expert(n: int, tally: dict):
        """The expert's run, stretched by the HBM time copies took from it meanwhile."""
        phi = 1.0 if setup.expert_hbm_fraction is None else setup.expert_hbm_fraction(n)
        wait = setup.expert_s(n)
        for _ in range(_MAX_ROUNDS):
            before = _hbm_bytes(net, hbm)
            yield env.timeout(wait)
            written = max(a - b for a, b in zip(_hbm_bytes(net, hbm), before))
            wait = phi * written / hbm_bw
            if wait <= 0:
                return
            tally["contention"] += wait
        yield env.timeout(wait)

    def run_batch(i: int, prompts: np.ndarray):
        t0 = env.now
        order, counts = _distinct_in_order(prompts)
        yield env.timeout(setup.router_s(len(prompts)))
        router = env.now - t0
        _span(trace, "router", t0, env.now, "router")
        tally = {"hits": 0, "misses": 0, "copied": 0.0, "switch": 0.0, "expert": 0.0, "contention": 0.0}
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
            yield from run_expert(n, tally)
            tally["expert"] += env.now - te
            _span(trace, f"expert {e} x{n}", te, env.now, "expert")
        records.append(BatchRecord(i, len(prompts), len(order), tally["hits"], tally["misses"], router,
                                   tally["switch"], tally["expert"], env.now - t0, tally["contention"],
                                   tally["copied"], t0))

    def run_all():
        for i, prompts in enumerate(routes):
            yield from run_batch(i, prompts)

    env.process(run_all())
    env.run()
    return tuple(records)


_MAX_ROUNDS = 50    # a copy takes a small share of HBM, so the stretch converges in a few rounds


def _hbm_bytes(net: FlowNetwork, links: list[str]) -> list[float]:
    moved = net.link_bytes
    return [moved[name] for name in links]


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
