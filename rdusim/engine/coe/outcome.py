"""What the expert cache does with a routing, apart from any timing.

Without prefetch a batch waits for each copy it starts, so which experts hit and which
miss depends only on the routing, the number of HBM slots, the cache policy and the
warm start -- not on how long anything takes. A :class:`CacheOutcome` records that once;
every platform with the same slots, every output-token count and every sweep point that
changes only speeds (DDR bandwidth, launch costs...) times the same outcome
(:func:`rdusim.engine.coe.serving.serve_sequential`).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Sequence

import numpy as np

from rdusim.derived import derived
from rdusim.config.workload_coe import CachePolicy
from rdusim.engine.coe.cache import ExpertCache


@dataclass(frozen=True)
class CacheOutcome:
    """Per batch: its prompts, the distinct experts in order of first appearance, the
    prompts on each, and whether each was a hit."""

    prompts: tuple[int, ...]
    order: tuple[tuple[int, ...], ...]
    counts: tuple[tuple[int, ...], ...]
    hit: tuple[tuple[bool, ...], ...]

    @classmethod
    def concat(cls, outcomes: Sequence["CacheOutcome"]) -> "CacheOutcome":
        """The batches of several outcomes one after another (replications side by side)."""
        return cls(*(tuple(chain.from_iterable(getattr(o, f) for o in outcomes))
                     for f in ("prompts", "order", "counts", "hit")))

    @derived
    def prompt_counts(self) -> np.ndarray:
        """Prompts of each batch, as an array."""
        return np.array(self.prompts, dtype=np.int64)

    @derived
    def batch_sizes(self) -> tuple[list[int], np.ndarray]:
        """The distinct batch sizes (ascending) and, per batch, the index of its size among them."""
        sizes, which = np.unique(self.prompt_counts, return_inverse=True)
        return sizes.tolist(), which.reshape(-1)

    @derived
    def hits(self) -> np.ndarray:
        return np.array([sum(h) for h in self.hit], dtype=np.int64)

    @derived
    def distinct(self) -> np.ndarray:
        return np.array([len(o) for o in self.order], dtype=np.int64)

    @derived
    def misses(self) -> np.ndarray:
        return np.array([len(h) - sum(h) for h in self.hit], dtype=np.int64)

    @derived
    def count_histogram(self) -> np.ndarray:
        """``[batch, n]``: how many of the batch's experts serve ``n`` prompts."""
        flat = np.array([n for cs in self.counts for n in cs], dtype=np.int64)
        width = int(flat.max()) + 1 if len(flat) else 1
        rows = np.repeat(np.arange(len(self.counts), dtype=np.int64), [len(cs) for cs in self.counts])
        return np.bincount(rows * width + flat, minlength=len(self.counts) * width).reshape(len(self.counts), width)


Split = tuple[tuple[int, ...], tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...]]


def split_batches(routes: Sequence[np.ndarray]) -> Split:
    """Per batch of a routing: its prompts, its distinct experts in order of first appearance
    and the prompts on each (what every cache replaying the routing looks up)."""
    prompts, orders, counts = [], [], []
    for batch in routes:
        ids = batch.tolist()
        seen: dict[int, int] = {}
        for e in ids:
            seen[e] = seen.get(e, 0) + 1       # dicts keep first-appearance order
        prompts.append(len(ids))
        orders.append(tuple(seen))
        counts.append(tuple(seen.values()))
    return tuple(prompts), tuple(orders), tuple(counts)


def cache_outcome(slots: int, policy: CachePolicy, hottest: Sequence[int],
                  routes: Sequence[np.ndarray], split: Split | None = None) -> CacheOutcome:
    """Replay ``routes`` through an expert cache of ``slots`` slots, warm with ``hottest``
    (no replay when the warm cache already holds every expert the routing asks for).
    ``split``: :func:`split_batches` of ``routes`` when the caller has it."""
    prompts, orders, counts = split if split is not None else split_batches(routes)
    cache = ExpertCache(slots, policy, hottest=hottest, warm=hottest)
    asked = [e for order in orders for e in order]     # every lookup, batch after batch
    looked = [True] * len(asked) if cache.holds_all(asked) else cache.hit_each(asked)
    hits, i = [], 0
    for order in orders:
        hits.append(tuple(looked[i:i + len(order)]))
        i += len(order)
    return CacheOutcome(prompts, orders, counts, tuple(hits))
