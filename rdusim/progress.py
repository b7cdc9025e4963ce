"""A one-line progress bar for long runs, silent in CI logs and pipes.

Usage (studies, sweeps, ``rdusim validate``)::

    from rdusim.progress import Progress

    with Progress(total=len(points), label="coe sweep") as bar:
        for p in points:
            simulate(p)
            bar.advance()          # or bar.advance(n)

The bar is drawn on ``stream`` (default ``sys.stderr``) only when that stream is
a terminal and the run has already lasted ``delay_s`` (about 2 s), so short
runs and redirected output stay clean. It shows done/total, the rate and an
ETA, redraws at most ``1 / refresh_s`` times a second, and is erased when the
``with`` block ends. It never touches stdout unless asked to, never raises on
a closed stream, and has no global state. A copy in a forked worker process
(:mod:`rdusim.parallel`) counts but does not draw.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, Optional, TextIO

_BAR_WIDTH = 24


class Progress:
    """Context manager: ``with Progress(total, label) as bar: ... bar.advance()``."""

    def __init__(self, total: int, label: str, stream: Optional[TextIO] = None, *,
                 delay_s: float = 2.0, refresh_s: float = 0.1,
                 clock: Callable[[], float] = time.monotonic, force: Optional[bool] = None):
        if total < 0:
            raise ValueError("total must be >= 0")
        self.total = int(total)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.delay_s = delay_s
        self.refresh_s = refresh_s
        self._clock = clock
        self._force = force
        self._done = 0
        self._start = 0.0
        self._last_draw = float("-inf")
        self._drawn_width = 0

    # -- read-only state -------------------------------------------------
    @property
    def done(self) -> int:
        return self._done

    @property
    def enabled(self) -> bool:
        """True when drawing is allowed at all (a terminal, or forced)."""
        if self._force is not None:
            return self._force
        isatty = getattr(self.stream, "isatty", None)
        try:
            return bool(isatty and isatty())
        except (ValueError, OSError):   # closed stream
            return False

    # -- context manager -------------------------------------------------
    def __enter__(self) -> "Progress":
        self._start = self._clock()
        self._on = self.enabled
        self._pid = os.getpid()
        return self

    def __exit__(self, *exc) -> None:
        if self._drawn_width:
            self._write("\r" + " " * self._drawn_width + "\r")
            self._drawn_width = 0

    def advance(self, n: int = 1) -> None:
        self._done = min(self.total, self._done + n) if self.total else self._done + n
        if not getattr(self, "_on", False) or os.getpid() != self._pid:
            return          # off, or a forked worker's copy (rdusim.parallel): only the caller draws
        now = self._clock()
        elapsed = now - self._start
        if elapsed < self.delay_s:
            return
        if now - self._last_draw < self.refresh_s and self._done < self.total:
            return
        self._last_draw = now
        line = self.line(elapsed)
        pad = max(0, self._drawn_width - len(line))
        self._write("\r" + line + " " * pad)
        self._drawn_width = len(line)

    # -- formatting ------------------------------------------------------
    def line(self, elapsed: float) -> str:
        """The text of the bar after ``elapsed`` seconds (pure; used by the tests)."""
        total = self.total
        frac = self._done / total if total else 1.0
        filled = int(round(frac * _BAR_WIDTH))
        bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
        rate = self._done / elapsed if elapsed > 0 else 0.0
        if rate > 0 and total:
            eta = _fmt_time((total - self._done) / rate)
        else:
            eta = "?"
        return f"{self.label} [{bar}] {self._done}/{total} {rate:.3g}/s ETA {eta}"

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (ValueError, OSError):
            self._on = False


def _fmt_time(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
