"""Trace events, neutral ground between the engines that emit them and the report that reads them.

Engines and studies build Chrome / Perfetto events with a :class:`TraceBuilder` and put
``builder.events()`` into ``RunResult.trace``; :mod:`rdusim.report.trace` checks and
writes them (``rdusim run --trace``). Nothing here imports the report (or anything but the
standard library), so ``rdusim/engine`` never needs ``rdusim/report``. Times are given in
**seconds** of simulated time and stored in microseconds, as the format wants.

    from rdusim.tracing import Lane, TraceBuilder

    tb = TraceBuilder(max_events=200_000)          # optional window=(t0_s, t1_s)
    tb.span("decoder_layer", start_s, dur_s, device="sn40l/socket0",
            lane=Lane.COMPUTE, cat="kernel", flops=1.2e12)
    result_trace = tb.events()                     # tuple of dicts, metadata first

One process (pid) per ``device`` name (a socket, a GPU, a host), numbered in order of
first use; one thread (tid) per ``lane`` inside it: the four :class:`Lane` values have
fixed tids (compute 1, launch 2, memory copies 3, links 4) and any other string gets the
next free tid. Bounds: once ``max_events`` spans are kept, further spans are dropped; with
a ``window`` only spans starting inside it are kept; a metadata event named
``rdusim_trace_window`` records ``truncated``, ``dropped`` and the bounds.
"""

from __future__ import annotations

import enum
from typing import Any, Optional

US_PER_S = 1e6
DEFAULT_MAX_EVENTS = 200_000
WINDOW_EVENT = "rdusim_trace_window"
_META_NAMES = {"process_name", "thread_name", "process_sort_index", "thread_sort_index",
               WINDOW_EVENT}
_EPS_US = 1e-6


class Lane(enum.Enum):
    """Standard threads of a device process."""

    COMPUTE = "compute"
    LAUNCH = "launch"
    MEMORY = "memory copies"
    LINKS = "links"


_LANE_TIDS = {Lane.COMPUTE: 1, Lane.LAUNCH: 2, Lane.MEMORY: 3, Lane.LINKS: 4}


def span(name: str, start_s: float, dur_s: float, pid: int, tid: int,
         cat: str = "", **args: Any) -> dict:
    """One complete ("X") event; times in seconds in, microseconds out."""
    return {"name": str(name), "ph": "X", "ts": float(start_s) * US_PER_S,
            "dur": float(dur_s) * US_PER_S, "pid": int(pid), "tid": int(tid),
            "cat": str(cat), "args": dict(args)}


def process_name(pid: int, name: str) -> dict:
    return {"name": "process_name", "ph": "M", "pid": int(pid), "tid": 0, "args": {"name": name}}


def thread_name(pid: int, tid: int, name: str) -> dict:
    return {"name": "thread_name", "ph": "M", "pid": int(pid), "tid": int(tid), "args": {"name": name}}


class TraceBuilder:
    """Collects spans with named processes/threads, under an event cap and a time window."""

    def __init__(self, max_events: int = DEFAULT_MAX_EVENTS,
                 window: Optional[tuple[float, float]] = None):
        if max_events < 0:
            raise ValueError("max_events must be >= 0")
        self.max_events = int(max_events)
        self.window = window
        self._pids: dict[str, int] = {}
        self._tids: dict[tuple[int, str], int] = {}
        self._meta: list[dict] = []
        self._spans: list[dict] = []
        self._dropped = 0

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def truncated(self) -> bool:
        return self._dropped > 0

    def __len__(self) -> int:
        return len(self._spans)

    def process(self, device: str) -> int:
        """The pid of a device (socket, GPU, host), named on first use."""
        pid = self._pids.get(device)
        if pid is None:
            pid = self._pids[device] = len(self._pids) + 1
            self._meta.append(process_name(pid, device))
            self._meta.append({"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0,
                               "args": {"sort_index": pid}})
        return pid

    def thread(self, pid: int, lane: Lane | str) -> int:
        """The tid of a lane inside process ``pid``, named on first use."""
        label = lane.value if isinstance(lane, Lane) else str(lane)
        tid = self._tids.get((pid, label))
        if tid is None:
            if isinstance(lane, Lane):
                tid = _LANE_TIDS[lane]
            else:
                used = {t for (p, _), t in self._tids.items() if p == pid}
                tid = max(used | set(_LANE_TIDS.values())) + 1
            self._tids[(pid, label)] = tid
            self._meta.append(thread_name(pid, tid, label))
        return tid

    def span(self, name: str, start_s: float, dur_s: float, *, device: str,
             lane: Lane | str = Lane.COMPUTE, cat: str = "", **args: Any) -> bool:
        """Add one span; returns False when it was dropped by the cap or window."""
        if self.window is not None and not (self.window[0] <= start_s < self.window[1]):
            self._dropped += 1
            return False
        if len(self._spans) >= self.max_events:
            self._dropped += 1
            return False
        pid = self.process(device)
        tid = self.thread(pid, lane)
        self._spans.append(span(name, start_s, dur_s, pid, tid, cat, **args))
        return True

    def events(self) -> tuple[dict, ...]:
        """Metadata first, then spans by start time (stable, so deterministic)."""
        spans = sorted(self._spans, key=lambda e: (e["ts"], e["pid"], e["tid"]))
        window = {"name": WINDOW_EVENT, "ph": "M", "pid": 0, "tid": 0,
                  "args": {"truncated": self.truncated, "dropped": self._dropped,
                           "kept": len(spans), "max_events": self.max_events,
                           "window_s": list(self.window) if self.window else None}}
        return tuple(self._meta) + (window,) + tuple(spans)
