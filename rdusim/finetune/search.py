"""The largest batch that fits a device: memory grows with the batch (activations, padded
to the longest query the dataset allows), so the feasible batches are 1..B*; B* is found
by doubling then bisection, each probe one memory evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping


@dataclass(frozen=True)
class Fit:
    batch: int                       # 0: not even one query fits
    binding: str                     # the memory item that grows past capacity at batch + 1
    parts_at_limit: Mapping[str, float]
    parts_of: Callable[[int], Mapping[str, float]] = field(compare=False, repr=False, default=None)


def largest_batch(parts: Callable[[int], Mapping[str, float]], capacity_bytes: float,
                  limit: int = 1 << 16) -> Fit:
    """``parts(b)`` -> bytes per memory item at batch b (their sum must be monotone in b)."""
    def fits(b: int) -> bool:
        return sum(parts(b).values()) <= capacity_bytes

    if not fits(1):
        return Fit(0, _binding(parts, 0, 1, capacity_bytes), dict(parts(1)), parts)
    if fits(limit):
        return Fit(limit, "batch limit", dict(parts(limit)), parts)
    lo, hi = 1, 2                    # fits(lo), and not fits(hi) once hi is found
    while hi < limit and fits(hi):
        lo, hi = hi, hi * 2
    hi = min(hi, limit)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return Fit(lo, _binding(parts, lo, hi, capacity_bytes), dict(parts(lo)), parts)


def _binding(parts, ok: int, over: int, capacity: float) -> str:
    """The item that grew most from the last batch that fits to the first that does not
    (at batch 1, the largest item)."""
    after = parts(over)
    if ok == 0:
        return max(after, key=after.get)
    before = parts(ok)
    return max(after, key=lambda k: after[k] - before.get(k, 0.0))
