"""The HBM expert cache: which experts are resident, and whom to evict.

A pure state machine (no SimPy): ``access(expert)`` says hit or miss and, on a miss,
which expert was evicted to make room. Capacity is in expert slots.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable, Optional

from rdusim.config.workload_coe import CachePolicy


@dataclass(frozen=True)
class Access:
    expert: int
    hit: bool
    evicted: Optional[int] = None


class ExpertCache:
    def __init__(self, slots: int, policy: CachePolicy, *, hottest: Iterable[int] = (),
                 warm: Iterable[int] = ()):
        """``hottest``: experts by descending popularity (STATIC pins the first slots-1 of them).
        ``warm``: experts resident at the start (at most ``slots``), oldest first."""
        if slots < 1:
            raise ValueError("an expert cache needs at least one slot")
        self.slots = slots
        self.policy = policy
        self._order: OrderedDict[int, None] = OrderedDict()   # recency: oldest first
        self._freq: dict[int, int] = {}
        self._pinned: frozenset[int] = frozenset()
        if policy == CachePolicy.STATIC:
            self._pinned = frozenset(list(hottest)[: max(0, slots - 1)])
            warm = [*self._pinned, *[e for e in warm if e not in self._pinned]]
        for e in list(warm)[:slots]:
            self._order[e] = None
            self._freq[e] = 0
        self.hits = 0
        self.misses = 0

    @property
    def resident(self) -> frozenset[int]:
        return frozenset(self._order)

    def __contains__(self, expert: int) -> bool:
        return expert in self._order

    def holds_all(self, experts: Iterable[int]) -> bool:
        """Every one of ``experts`` is resident now: asked for none but these, the cache never
        misses (and so never evicts), whatever the order and the policy."""
        order = self._order
        return all(e in order for e in experts)

    def victim(self) -> Optional[int]:
        """The expert a miss now would evict (None: a slot is free)."""
        return self._victim() if len(self._order) >= self.slots else None

    def access(self, expert: int) -> Access:
        """Look ``expert`` up (a miss makes it resident): hit or miss, and whom it evicted."""
        hit, evicted = self._lookup(expert)
        return Access(expert, hit, evicted)

    def hit(self, expert: int) -> bool:
        """:meth:`access` that only says whether it was a hit (the serving loops' hot path)."""
        if self.policy is not CachePolicy.LRU:
            return self._lookup(expert)[0]
        got = _lru_hit(self._order, self.slots, expert)
        if got:
            self.hits += 1
        else:
            self.misses += 1
        return got

    def hit_each(self, experts: Iterable[int]) -> list[bool]:
        """:meth:`hit` of each expert in turn (a batch's experts; the closed forms' replay)."""
        if self.policy != CachePolicy.LRU:
            return [self._lookup(e)[0] for e in experts]
        order, slots = self._order, self.slots
        out = [_lru_hit(order, slots, e) for e in experts]
        n_hits = sum(out)
        self.hits += n_hits
        self.misses += len(out) - n_hits
        return out

    def _lookup(self, expert: int) -> tuple[bool, Optional[int]]:
        order = self._order
        self._freq[expert] = self._freq.get(expert, 0) + 1
        if expert in order:
            order.move_to_end(expert)
            self.hits += 1
            return True, None
        self.misses += 1
        evicted = self._victim() if len(order) >= self.slots else None
        if evicted is not None:
            del order[evicted]
        order[expert] = None
        return False, evicted

    def _victim(self) -> int:
        order, pinned = self._order, self._pinned
        if self.policy == CachePolicy.LFU:
            candidates = [e for e in order if e not in pinned] or list(order)
            # least frequently used; among equals the least recent (candidates are oldest first)
            return min(candidates, key=lambda e: self._freq.get(e, 0))
        # LRU, and the rotating slot of STATIC: the least recent expert that is not pinned
        for e in order:
            if e not in pinned:
                return e
        return next(iter(order))


def _lru_hit(order, slots: int, expert: int) -> bool:
    """An LRU lookup: LRU pins nothing and reads no use counts, so the victim is the least
    recent expert, the first in ``order`` (a miss makes ``expert`` resident)."""
    if expert in order:
        order.move_to_end(expert)
        return True
    if len(order) >= slots:
        order.popitem(last=False)
    order[expert] = None
    return False
