"""A guard for the serving loops: simulated time must advance, stay finite and stay within
the span the clock resolves.

Every pass of a scheduler's loop ends an event (a step, or a jump to the next arrival), so
the clock moves on at least every few passes: a pass may only admit or preempt without
running anything, and there are at most a few of those per request in the system. A loop
whose clock stands still for ``still_limit`` passes is stuck: :class:`Stalled` (a fault of
the simulator, reported as an internal error). A clock that is not finite or passes
MAX_SIM_TIME_S means the inputs made a step or an arrival gap too long (or a step shorter
than the clock resolves): :class:`ClockOutOfRange`, which the study reports as bad input.
"""

from __future__ import annotations

import math

from rdusim.config.limits import MAX_SIM_TIME_S

MIN_STILL_PASSES = 10_000


class ClockOutOfRange(ValueError):
    """The simulated clock left [0, MAX_SIM_TIME_S]: the inputs' fault."""

    def __init__(self, where: str, now: float):
        super().__init__(where, now)
        self.where, self.now = where, now

    def __str__(self) -> str:
        return (f"{self.where}: the clock reached {self.now:.4g} s (a step or a gap between arrivals too long, "
                "e.g. a bandwidth or a rate near zero)")


class Stalled(RuntimeError):
    """A serving loop that stopped advancing simulated time: a fault of the simulator."""


class ClockGuard:
    """Made with the loop's requests (their arrival times checked: finite, in range, in
    order); then :meth:`tick` once per pass of the loop with its clock."""

    def __init__(self, where: str, seqs):
        self.where = where
        self.still_limit = MIN_STILL_PASSES + 8 * len(seqs)
        self.last = -math.inf
        self.still = 0
        before = 0.0
        for q in seqs:
            if not 0.0 <= q.arrival_s <= MAX_SIM_TIME_S:      # also catches nan
                raise ClockOutOfRange(where, q.arrival_s)
            if q.arrival_s < before:
                raise Stalled(f"{where}: arrivals out of time order ({q.arrival_s!r} s after {before!r} s)")
            before = q.arrival_s

    def tick(self, now: float) -> None:
        if not 0.0 <= now <= MAX_SIM_TIME_S:        # also catches nan
            raise ClockOutOfRange(self.where, now)
        if now > self.last:
            self.last, self.still = now, 0
            return
        self.still += 1
        if self.still > self.still_limit:
            raise Stalled(f"{self.where}: no progress in simulated time for {self.still} passes at t = {now!r} s")


class ClockResolution(ClockOutOfRange):
    """Steps shorter than the clock resolves where the run is: the inputs' fault."""

    def __str__(self) -> str:
        return (f"{self.where}: a request got its first token at its own arrival time ({self.now:.6g} s), the "
                "steps lost in the clock's rounding there (arrivals too far apart, or steps too short)")


def check_times(where: str, seqs) -> None:
    """Every request served took time: its first token after its arrival, its end not before
    its first token (else the clock lost the steps: ClockResolution)."""
    for q in seqs:
        if q.finish_s == q.finish_s and not (q.arrival_s < q.first_token_s <= q.finish_s):
            raise ClockResolution(where, q.arrival_s)


def on_platform(exc: ClockOutOfRange, platform: str) -> ClockOutOfRange:
    """``exc`` with the platform named."""
    exc.where = f"platform {platform}, {exc.where}"
    return exc
