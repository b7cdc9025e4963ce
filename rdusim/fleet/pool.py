"""A pool: N replicas of one server behind a router, simulated together.

Requests are routed in arrival order. Before routing request i, every replica's
simulation runs up to its arrival time: each is handed a placeholder arrival at that
instant (so a run of decode steps stops there exactly as it would for a real arrival) and
stepped while its clock is before it; the placeholder is then withdrawn and the request
added to the chosen replica. A replica's loop is the single server's
(rdusim.serve.continuous, its ``step``), so one replica replays the plain server's run to
the bit. With several replicas a replica's runs of decode steps are also cut where the
router looks (at every request's arrival, not just its own): the cut run's remaining steps
are timed from the mean context at the cut, as after any event of the single server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from rdusim.fleet.router import RouterPolicy, choose
from rdusim.serve.arrivals import Arrival
from rdusim.serve.continuous import _Continuous
from rdusim.serve.guard import ClockGuard
from rdusim.serve.server import RunLog, Seq, ServerSetup


@dataclass
class PoolRun:
    logs: list[RunLog]            # one per replica
    replica: list[int]            # replica of each request routed, in order


def run_pool(setup: ServerSetup, seqs: Sequence[Seq], replicas: int, policy: RouterPolicy,
             warmup: int = 0) -> PoolRun:
    """``seqs`` (in time order, ids global) served by ``replicas`` copies of ``setup``."""
    sims = [_Continuous(setup, ()) for _ in range(replicas)]
    guards = [ClockGuard(f"replica {r}, continuous batching", ()) for r in range(replicas)]
    for s in sims:
        s.log.warmup = warmup
    ClockGuard("fleet router", seqs)           # arrival times finite, in range, in order
    ghost = Seq(-1, Arrival(0.0, 1, 1))
    placed: list[int] = []
    routed: list[list[Seq]] = [[] for _ in sims]
    for i, q in enumerate(seqs):
        ghost.arrival_s = q.arrival_s
        for s, g in zip(sims, guards):
            if s.now >= q.arrival_s:
                continue
            s.pending.append(ghost)
            while s.now < q.arrival_s:
                g.tick(s.now)
                s.step()
            s.pending.pop()
        r = choose(policy, sims, routed, i, q.arrival_s, q)
        sims[r].add(q)
        if sims[r].pending and sims[r].pending[-1] is q:
            routed[r].append(q)
        placed.append(r)
    for s, g in zip(sims, guards):
        while s.busy():
            g.tick(s.now)
            s.step()
    return PoolRun([s.log for s in sims], placed)
