"""A step time as a function of one integer (prompt tokens, batch size), simulated at knots.

An engine's step time is not smooth in the number of tokens or sequences: it jumps where a
GEMM needs another row of tiles or another wave of thread blocks, or where the RDU compiler
picks another pipeline plan, and is nearly affine in between. Interpolating between far
apart anchors misses those jumps (a 386-token prefill costs 35% more than a 384-token one on
one A100). Knots find them: the axis is cut into cells (:class:`Cells`); the first time a
cell is asked for, the engine is simulated at its two ends and its middle, and a cell whose
middle lies off the line through its ends by more than ``tolerance`` is halved (both halves
checked the same way) until every piece is affine or one unit wide. The value at any
integer is then exact at every knot and linear between adjacent knots. A jump is found to
the unit; a kink to within twice the tolerance.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Callable

TOLERANCE = 0.004      # relative: a cell's middle within this of the line through its ends


@dataclass(frozen=True)
class Cells:
    """Cells of ``width`` units up to ``upto``, then of ``width * 2^k`` units (``k`` = 1, 2, ...)
    up to each of ``then`` in turn, then of half an octave (the power of two at or below the
    cell's start, halved); cells starting at or below ``check_upto`` are checked (beyond, a
    cell's two ends are its only knots). 1 is a cell of its own (one token or sequence is
    where the engines' plans differ most from two)."""

    width: int
    upto: int
    then: tuple[int, ...] = ()
    check_upto: int = 1 << 62

    def of(self, x: int) -> tuple[int, int]:
        """The cell (first, last) holding integer ``x`` >= 1; cells are (a, b] with knots at a+1 and b."""
        if x <= 1:
            return 1, 1
        start, width = 0, self.width
        for edge in (self.upto,) + self.then:
            if x <= edge:
                j = (x - start - 1) // width
                return max(2, start + j * width + 1), start + (j + 1) * width
            start, width = edge, 2 * width
        while True:
            step = max(self.width, (1 << (start.bit_length() - 1)) // 2)
            if x <= start + step:
                return start + 1, start + step
            start += step


class Knots:
    """``f`` at the integers, from knots found cell by cell (module docstring)."""

    def __init__(self, f: Callable[[int], float], cells: Cells, tolerance: float = TOLERANCE) -> None:
        self._f = f
        self._cells = cells
        self._tol = tolerance
        self._done: dict[int, tuple[list[int], list[float]]] = {}   # cell start -> knots, values

    def __call__(self, x: int) -> float:
        lo, hi = self._cells.of(max(1, int(x)))
        got = self._done.get(lo)
        if got is None:
            got = self._done[lo] = self._cell(lo, hi)
        xs, ys = got
        i = bisect.bisect_left(xs, x)
        if xs[i] == x:
            return ys[i]
        return ys[i - 1] + (ys[i] - ys[i - 1]) * (x - xs[i - 1]) / (xs[i] - xs[i - 1])

    def _cell(self, lo: int, hi: int) -> tuple[list[int], list[float]]:
        f = self._f
        pts = {lo: f(lo), hi: f(hi)}
        todo = [(lo, hi)] if lo <= self._cells.check_upto else []
        while todo:
            a, b = todo.pop()
            if b - a <= 1:
                continue
            mid = (a + b) // 2
            y = pts[mid] = f(mid)
            line = pts[a] + (pts[b] - pts[a]) * (mid - a) / (b - a)
            if abs(y - line) > self._tol * abs(y):
                todo += [(a, mid), (mid, b)]
        xs = sorted(pts)
        return xs, [pts[x] for x in xs]

    @property
    def knots(self) -> int:
        """Knots simulated so far."""
        return sum(len(xs) for xs, _ in self._done.values())
