"""Routers: which replica of a pool takes a request.

A router sees each replica's state at the request's arrival (the replicas are simulated up
to that instant first): ``round_robin`` ignores it; ``least_outstanding`` picks the replica
with the fewest requests in it (queued, swapped out or running); ``kv_aware`` the one whose
KV pool is least committed (blocks held plus the blocks its queued prompts will need, as a
share of its pool). Ties go to the lowest replica index. The router's own latency is a
declared number (``{value, source}`` in the plan file) added to every request's arrival.
"""

from __future__ import annotations

import enum


class RouterPolicy(enum.Enum):
    ROUND_ROBIN = "round_robin"
    LEAST_OUTSTANDING = "least_outstanding"
    KV_AWARE = "kv_aware"


def outstanding(routed: list, now: float) -> int:
    """Requests routed to a replica and not finished by ``now`` (a replica's clock may stand
    past ``now``, at the end of the step it is in: a request finishing then is still in)."""
    routed[:] = [q for q in routed if not q.finish_s <= now]
    return len(routed)


def kv_committed(sim) -> float:
    """Share of a replica's KV pool held or claimed by its queued prompts."""
    queued = sum(sim.blocks(q.target + 1) for q in sim.waiting) + sum(sim.blocks(q.prompt + 1) for q in sim.pending)
    return (sim.s.kv_blocks - sim.free + queued) / max(sim.s.kv_blocks, 1)


def choose(policy: RouterPolicy, sims, routed: list[list], i: int, now: float) -> int:
    """The replica for the ``i``-th request routed, arriving at ``now``. ``kv_aware`` reads
    each replica's KV pool as of its latest event."""
    if policy == RouterPolicy.ROUND_ROBIN or len(sims) == 1:
        return i % len(sims)
    if policy == RouterPolicy.LEAST_OUTSTANDING:
        return min(range(len(sims)), key=lambda r: (outstanding(routed[r], now), r))
    return min(range(len(sims)), key=lambda r: (kv_committed(sims[r]), r))
