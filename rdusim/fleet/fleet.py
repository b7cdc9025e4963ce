"""One fleet under a request stream: co-located replicas, or a prefill pool and a decode
pool (each its own platform, TP degree and replica count) with the KV cache sent between
them over the network.

Co-located: every request goes through the router (its latency added to the arrival) to a
replica that prefills and decodes it. Disaggregated: the prefill pool serves each request
as a one-token request (its prompt prefilled, the first token out); the KV cache of the
prompt then travels to the decode pool (rdusim.fleet.network), where the request arrives
with its KV in (``Seq.kv_in``: admitted with its blocks, no prefill computed) and decodes
its remaining tokens; a request's shared prompt prefix (prefix caching) goes with it to the
pool that prefills it. The prefill pool runs first and whole: the decode pool exerts no
back-pressure on it. A request's TTFT is its first token from the prefill pool; its time
between tokens includes the gap from that token to the second (the transfer and the
decode pool's queue); its end is the decode pool's.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Hashable, Optional, Sequence

from rdusim.fleet.network import KvLink
from rdusim.fleet.pool import PoolRun, run_pool
from rdusim.fleet.router import RouterPolicy
from rdusim.serve.arrivals import Arrival
from rdusim.serve.prefix_cache import PrefixCache
from rdusim.serve.server import RunLog, Seq


class Layout(enum.Enum):
    COLOCATED = "colocated"
    DISAGGREGATED = "disaggregated"


@dataclass(frozen=True)
class Pool:
    platform: object               # a rdusim.serve.platform.ServePlatform (its name, dep, setup())
    replicas: int
    nodes_per_replica: int


@dataclass(frozen=True)
class Fleet:
    serve: Pool                    # co-located: the pool; disaggregated: the decode pool
    prefill: Optional[Pool] = None
    link: Optional[KvLink] = None
    router: RouterPolicy = RouterPolicy.LEAST_OUTSTANDING
    router_s: float = 0.0

    @property
    def layout(self) -> Layout:
        return Layout.COLOCATED if self.prefill is None else Layout.DISAGGREGATED

    @property
    def nodes(self) -> int:
        return sum(p.replicas * p.nodes_per_replica for p in (self.prefill, self.serve) if p is not None)


@dataclass
class FleetRun:
    seqs: list[Seq]                            # every request end to end, by id (arrival: at the router)
    pools: dict[str, PoolRun] = field(default_factory=dict)
    kv_bytes: list[float] = field(default_factory=list)    # per request sent prefill -> decode
    kv_s: list[float] = field(default_factory=list)


def run_fleet(fleet: Fleet, arrivals: Sequence[Arrival], warmup: int = 0,
              prefilled: Optional[dict] = None, key: Hashable = None) -> FleetRun:
    """``prefilled`` (a dict the caller keeps) with ``key`` (what identifies the prefill pool
    and the stream: platform, replicas, arrivals): the prefill pool's run is kept there and
    reused by fleets with the same prefill pool and stream -- it does not depend on the
    decode pool, and nothing after it changes what a later fleet reads of it."""
    shifted = [dataclasses.replace(a, arrival_s=a.arrival_s + fleet.router_s) for a in arrivals]
    if fleet.prefill is None:
        seqs = [Seq(i, a) for i, a in enumerate(shifted)]
        run = run_pool(fleet.serve.platform.setup(), seqs, fleet.serve.replicas, fleet.router, warmup)
        _restore(seqs, arrivals)
        return FleetRun(seqs, {"serve": run})
    if prefilled is not None and key in prefilled:
        first, pre = prefilled[key]
    else:
        first = [Seq(i, dataclasses.replace(a, output_tokens=1)) for i, a in enumerate(shifted)]
        pre = run_pool(fleet.prefill.platform.setup(), first, fleet.prefill.replicas, fleet.router, warmup)
        if prefilled is not None:
            prefilled[key] = first, pre
    model = fleet.serve.platform.dep.model
    moved, kv_bytes, kv_s = [], [], []
    for q, a in zip(first, arrivals):
        if q.finish_s != q.finish_s or a.output_tokens <= 1:
            continue
        nbytes = float(model.kv_cache_bytes(q.prompt))
        t = fleet.link.time_s(nbytes)
        kv_bytes.append(nbytes)
        kv_s.append(t)
        d = Seq(q.id, Arrival(q.first_token_s + t + fleet.router_s, a.prompt_tokens, a.output_tokens))
        d.generated, d.kv_in = 1, a.prompt_tokens
        d.first_token_s = d.last_token_s = q.first_token_s
        moved.append(d)
    moved.sort(key=lambda d: (d.arrival_s, d.id))
    dec = run_pool(fleet.serve.platform.setup(), moved, fleet.serve.replicas, fleet.router, warmup)
    by_id = {d.id: d for d in moved}
    seqs = []
    for q in first:                 # the request end to end: prefill pool's start and first token
        d = by_id.get(q.id)
        if d is None:
            seqs.append(q)
            continue
        e = Seq(q.id, Arrival(q.arrival_s, d.prompt, d.output))
        e.start_s, e.first_token_s, e.generated = q.start_s, q.first_token_s, d.generated
        e.finish_s, e.preemptions = d.finish_s, q.preemptions + d.preemptions
        e.waited_s = q.waited_s + d.waited_s
        seqs.append(e)
    _restore(seqs, arrivals)
    return FleetRun(seqs, {"prefill": pre, "decode": dec}, kv_bytes, kv_s)


def _restore(seqs: list[Seq], arrivals: Sequence[Arrival]) -> None:
    """End to end, a request arrives at the router (its latency counts as queueing)."""
    for q in seqs:
        q.arrival_s = arrivals[q.id].arrival_s


def merged(seqs: list[Seq], logs: Sequence[RunLog], warmup: int) -> RunLog:
    """One log of ``seqs`` (ids 0..n-1 in order) with the replicas' counters and token gaps."""
    out = RunLog(sorted(seqs, key=lambda q: q.id), warmup=warmup)
    for lg in logs:
        out.rejected_kv += lg.rejected_kv
        out.steps += lg.steps
        out.preemptions += lg.preemptions
        out.swap_s += lg.swap_s
        out.kv_blocks += lg.kv_blocks
        out.kv_area += lg.kv_area
        out.tbt_s += lg.tbt_s
        out.tbt_runs += lg.tbt_runs
    caches = [lg.prefix_cache for lg in logs if lg.prefix_cache is not None]
    if caches:                 # prefix caching: the replicas' lookups, hits, saved tokens, evictions summed
        out.prefix_cache = total = PrefixCache()
        for c in caches:
            total.queried += c.queried
            total.hits += c.hits
            total.saved_tokens += c.saved_tokens
            total.evictions += c.evictions
    return out


def pool_log(run: PoolRun, warmup: int) -> tuple[RunLog, int]:
    """A pool's own log (its requests as it saw them: arrival at the pool, leaving it) and
    how many of them are warm-up."""
    seqs = sorted((q for lg in run.logs for q in lg.seqs), key=lambda q: q.id)
    warm = sum(1 for q in seqs if q.id < warmup)
    return merged(seqs, run.logs, warm), warm
