"""The flow network's step, written once, and copies that all start together without events.

Between two events the flows of a network stream at their max-min rates
(:mod:`rdusim.engine.maxmin`). :func:`assign_rates` gives every streaming flow its rate and
says when the first will have landed; :func:`advance_and_land` moves every flow on by the
time that passed and splits the landed ones off (forcing the earliest when rounding left a
sliver). :class:`rdusim.engine.transfer.FlowNetwork` runs them on SimPy's events, for any
mix of copies requested at any times, and :func:`together_s` below in a plain loop.

:class:`rdusim.engine.transfer.FlowNetwork` evaluates any mix of copies requested at any
times with SimPy events. When every copy is requested at the same instant and its path
has the same latency as the others' (an expert's shards switched in with nothing else
moving: :func:`rdusim.engine.coe.switching.lone_switch_s`), nothing can happen between
two landings but the landings themselves, so the network's answer is a short loop: the
flows join after the latency, take their max-min rates, the earliest ends, the rest take
new rates, and so on. :func:`together_s` runs that loop with the network's own
arithmetic, in its order (the same floats: ``tests/test_fluid.py`` checks it against the
network bit for bit), without importing SimPy.
"""

from __future__ import annotations

import math
from typing import Sequence

from rdusim.engine.maxmin import max_min_rates

# flows whose projected end lies within this relative distance of now are complete
REL_EPS = 1e-12


def landed(left: float, rate: float, nbytes: float, tol: float) -> bool:
    """Whether a flow with ``left`` of its ``nbytes`` still to move at ``rate`` has landed at
    a wake-up whose time tolerance is ``tol`` (``REL_EPS * max(now, 1e-9)``): nothing left,
    its end within ``tol``, or a sliver of rounding. FlowNetwork's rule, and this loop's."""
    return not left or left / rate <= tol or left <= nbytes * REL_EPS

def assign_rates(flows: list, rates: Sequence[float], now: float) -> float:
    """Give each streaming flow (``.path.index``, ``.remaining``) its path's max-min rate
    (``.rate``); the earliest time one of them will have landed."""
    next_end = math.inf
    for f in flows:
        f.rate = rate = rates[f.path.index]
        end = now + f.remaining / rate
        if end < next_end:
            next_end = end
    return next_end


def advance_and_land(flows: list, dt: float, now: float, moved_on: list | None) -> tuple[list, list]:
    """Move every flow on by ``dt`` at its rate (adding what it moved to ``moved_on[i]`` of
    each of its ``.links``, when given) and split the flows into (landed, still streaming)
    at ``now``: nothing left, its end within the tolerance, or a sliver of rounding; when
    none has, the earliest (by time left, then ``.seq``) is taken as landed."""
    tol = REL_EPS * max(now, 1e-9)
    ended, kept = [], []
    for f in flows:
        left = f.remaining
        if dt > 0:
            moved = f.rate * dt
            if not moved < left:
                moved = left
            f.remaining = left = left - moved
            if moved_on is not None:
                for i in f.links:
                    moved_on[i] += moved
        (ended if landed(left, f.rate, f.nbytes, tol) else kept).append(f)
    if not ended:                                 # rounding left a sliver: force the earliest one
        ended = [min(kept, key=lambda f: (f.remaining / f.rate, f.seq))]
        kept.remove(ended[0])
    return ended, kept


class _OnPath:
    """A path as a flow of :func:`together_s` refers to it (its index)."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index


class _Copy:
    """One copy of :func:`together_s`: what :func:`assign_rates` and :func:`advance_and_land` read."""

    __slots__ = ("path", "nbytes", "remaining", "rate", "seq")

    def __init__(self, path: _OnPath, nbytes: float, seq: int):
        self.path, self.nbytes, self.remaining, self.rate, self.seq = path, nbytes, nbytes, 0.0, seq


Link = tuple[str, float, float]      # (name, bandwidth bytes/s, latency s)


def together_s(links: Sequence[Link], paths: Sequence[tuple[str, ...]], nbytes: float) -> float | None:
    """When the last of ``len(paths)`` copies of ``nbytes`` each, all requested at time 0
    along ``paths`` over ``links``, has landed: what FlowNetwork gives. None when the
    network would need its events (the paths' latencies differ) or would refuse the input
    (an unknown or repeated link, a bad bandwidth, latency or byte count): then ask it."""
    known = {name: (float(bw), float(lat)) for name, bw, lat in links}
    if len(known) != len(links) or not paths or not 0.0 <= nbytes < math.inf:
        return None
    for bw, lat in known.values():
        if not (bw > 0 and math.isfinite(bw) and lat >= 0 and math.isfinite(lat)):
            return None
    order: list[tuple[str, ...]] = []         # distinct paths in the order first met (FlowNetwork's)
    index: dict[tuple[str, ...], int] = {}
    for p in paths:
        p = tuple(p)
        if not p or len(set(p)) != len(p) or any(name not in known for name in p):
            return None
        if p not in index:
            index[p] = len(order)
            order.append(p)
    latency = {p: sum([known[name][1] for name in p]) for p in order}
    if len(set(latency.values())) != 1:
        return None
    delay = latency[order[0]]
    now = 0.0 + delay if delay > 0 else 0.0       # SimPy's timeout: now + delay
    nbytes = float(nbytes)
    if nbytes <= 0:
        return now
    capacity = {name: bw for name, (bw, _) in known.items()}
    on = [_OnPath(x) for x in range(len(order))]
    flows = [_Copy(on[index[tuple(p)]], nbytes, seq) for seq, p in enumerate(paths)]
    counts = [0] * len(order)
    for f in flows:
        counts[f.path.index] += 1
    last = now
    solutions: dict[tuple[int, ...], list[float]] = {}
    while flows:
        key = tuple(counts)
        rates = solutions.get(key)
        if rates is None:
            rates = solutions[key] = max_min_rates(order, key, capacity)
        next_end = assign_rates(flows, rates, now)    # FlowNetwork._reschedule
        now = now + max(next_end - now, 0.0)          # the wake-up timeout
        dt = now - last                               # FlowNetwork._wake
        last = now
        ended, flows = advance_and_land(flows, dt, now, None)
        for f in ended:
            counts[f.path.index] -= 1
    return now
