"""Max-min fair rates of flows sharing links, by progressive filling.

Used by :class:`rdusim.engine.transfer.FlowNetwork` whenever the set of streaming flows
changes. Flows on the same path are interchangeable (they always get one rate), so the
solution depends only on how many flows take each path: the network solves each such mix
once.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence


def max_min_rates(paths: Sequence[tuple[str, ...]], counts: Sequence[int],
                  capacity: Mapping[str, float]) -> list[float]:
    """The rate of a flow on each of ``paths`` when ``counts[i]`` flows take path i (0.0 for a
    path nobody takes). Progressive filling: repeatedly the link whose remaining capacity,
    split equally over its flows not yet fixed, is tightest (the first in name order among
    equals) fixes those flows at that share. Each fixed flow subtracts its share from its
    links in turn, one flow after another, as flow-by-flow filling does (so the floats are
    the same whichever order the flows are listed in)."""
    users: dict[str, list[int]] = {}
    for i, (path, n) in enumerate(zip(paths, counts)):
        if n:
            for name in path:
                users.setdefault(name, []).append(i)
    cap = {name: capacity[name] for name in users}
    count = {name: sum(counts[i] for i in on) for name, on in users.items()}
    names = sorted(users)
    rates = [0.0] * len(paths)
    fixed = [False] * len(paths)
    left = sum(1 for n in counts if n)
    while left:
        best_name, best_share = None, math.inf
        for name in names:
            n = count[name]
            if n:
                share = cap[name] / n
                if share < best_share:
                    best_name, best_share = name, share
        if best_name is None:
            break
        share = max(best_share, 0.0)
        for i in users[best_name]:
            if fixed[i]:
                continue
            fixed[i] = True
            rates[i] = share
            left -= 1
            n = counts[i]
            for name in paths[i]:
                for _ in range(n):
                    cap[name] -= share
                count[name] -= n
    return rates
