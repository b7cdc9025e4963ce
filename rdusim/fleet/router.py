"""Routers: which replica of a pool takes a request.

A router sees each replica's state at the request's arrival (the replicas are simulated up
to that instant first): ``round_robin`` ignores it; ``least_outstanding`` picks the replica
with the fewest requests in it (queued, swapped out or running); ``kv_aware`` the one whose
KV pool is least committed (blocks held plus the blocks its queued prompts will need, as a
share of its pool); ``prefix_aware`` the one whose prefix cache holds the longest
leading run of the request's prefix blocks (rdusim.serve.prefix_cache, ``PrefixCache.match``
on the chained block hashes; as of the replica's latest event), ties -- and requests with no
prefix, or no block cached anywhere -- to the least outstanding requests. Ties go to the
lowest replica index. The router's own latency is a declared number (``{value, source}`` in
the plan file) added to every request's arrival, whatever the policy.
"""

from __future__ import annotations

import enum


class RouterPolicy(enum.Enum):
    ROUND_ROBIN = "round_robin"
    LEAST_OUTSTANDING = "least_outstanding"
    KV_AWARE = "kv_aware"
    PREFIX_AWARE = "prefix_aware"


def outstanding(routed: list, now: float) -> int:
    """Requests routed to a replica and not finished by ``now`` (a replica's clock may stand
    past ``now``, at the end of the step it is in: a request finishing then is still in)."""
    routed[:] = [q for q in routed if not q.finish_s <= now]
    return len(routed)


def kv_committed(sim) -> float:
    """Share of a replica's KV pool held or claimed by its queued prompts."""
    queued = sum(sim.blocks(q.target + 1) for q in sim.waiting) + sum(sim.blocks(q.prompt + 1) for q in sim.pending)
    return (sim.s.kv_blocks - sim.free + queued) / max(sim.s.kv_blocks, 1)


def prefix_hit(sim, q) -> int:
    """Leading blocks of ``q``'s prefix held by a replica's prefix cache (0: caching off, or
    no prefix)."""
    return sim.pc.match(sim.prefix_hashes(q)) if sim.pc is not None and q.prefix >= 0 else 0


def choose(policy: RouterPolicy, sims, routed: list[list], i: int, now: float, q=None) -> int:
    """The replica for the ``i``-th request routed (``q``), arriving at ``now``. ``kv_aware``
    and ``prefix_aware`` read each replica's state as of its latest event."""
    if policy == RouterPolicy.ROUND_ROBIN or len(sims) == 1:
        return i % len(sims)
    if policy == RouterPolicy.LEAST_OUTSTANDING:
        return min(range(len(sims)), key=lambda r: (outstanding(routed[r], now), r))
    if policy == RouterPolicy.PREFIX_AWARE:
        return min(range(len(sims)), key=lambda r: (-prefix_hit(sims[r], q), outstanding(routed[r], now), r))
    return min(range(len(sims)), key=lambda r: (kv_committed(sims[r]), r))
