"""Chrome / Perfetto timeline traces: build events, bound them, check them, write them.

Engines and studies build events with a :class:`TraceBuilder` and put
``builder.events()`` into ``RunResult.trace``; ``rdusim run --trace`` then calls
:func:`write_trace`, which writes ``trace.json`` (open it in https://ui.perfetto.dev
or chrome://tracing). Times are given in **seconds** of simulated time and
stored in microseconds, as the format wants.

    from rdusim.tracing import Lane, TraceBuilder     # the builder lives in rdusim.tracing

    tb = TraceBuilder(max_events=200_000)          # optional window=(t0_s, t1_s)
    tb.span("decoder_layer", start_s, dur_s, device="sn40l/socket0",
            lane=Lane.COMPUTE, cat="kernel", flops=1.2e12)
    tb.span("expert 17 DDR->HBM", t, d, device="sn40l/socket0", lane=Lane.MEMORY, cat="switch")
    tb.span("launch k3", t, d, device="host", lane=Lane.LAUNCH, cat="launch")
    tb.span("all-reduce", t, d, device="dgx_h100/gpu0", lane="nvlink", cat="collective")
    result_trace = tb.events()                     # tuple of dicts, metadata first

One process (pid) per ``device`` name (a socket, a GPU, a host), numbered in
order of first use; one thread (tid) per ``lane`` inside it: the four
:class:`Lane` values have fixed tids (compute 1, launch 2, memory copies 3,
links 4) and any other string gets the next free tid. Process and thread
names are emitted as ``"ph": "M"`` metadata events.

Bounds: once ``max_events`` spans are kept, further spans are dropped; with a
``window`` only spans starting inside it are kept. Either way a metadata
event named ``rdusim_trace_window`` records ``truncated``, ``dropped`` and the
bounds, and :func:`write_trace` repeats it under ``otherData``.

Lower level: :func:`span` returns one ``"ph": "X"`` event dict;
:func:`check_trace` returns the list of problems of a trace object (empty if
it is valid): required fields, non-negative times, and no partial overlap of
spans on one (pid, tid) (nesting is allowed unless ``allow_nesting=False``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from rdusim.results import atomic_write_text, plain
from rdusim.tracing import (_EPS_US, _LANE_TIDS, _META_NAMES, DEFAULT_MAX_EVENTS, US_PER_S,  # noqa: F401 (re-exported)
                            WINDOW_EVENT, Lane, TraceBuilder, process_name, span, thread_name)

def write_trace(events: Iterable[Mapping[str, Any]], out_dir: str | Path,
                max_events: int = DEFAULT_MAX_EVENTS) -> Path:
    """Write ``out_dir/trace.json``; more than ``max_events`` spans are cut (and said so).
    Non-integer pids/tids (e.g. ``"sn40l.bench.mode"``) are renumbered, keeping the
    text as the process/thread name, so the file is valid for every viewer."""
    events = normalise_ids([plain(e) for e in events])
    meta = [e for e in events if e.get("ph") == "M" and e.get("name") != WINDOW_EVENT]
    spans = [e for e in events if e.get("ph") != "M"]
    windows = [e.get("args", {}) for e in events if e.get("ph") == "M" and e.get("name") == WINDOW_EVENT]
    other: dict[str, Any] = {"truncated": any(w.get("truncated") for w in windows),
                             "dropped": sum(int(w.get("dropped") or 0) for w in windows)}
    if windows:
        other["window_s"] = [w.get("window_s") for w in windows if w.get("window_s")] or None
    if len(spans) > max_events:
        other["dropped"] += len(spans) - max_events
        other["truncated"] = True
        spans = spans[:max_events]
    other["kept"] = len(spans)
    other["max_events"] = max_events
    if not spans:
        other["note"] = "this run recorded no trace events"
    obj = {"traceEvents": meta + spans, "displayTimeUnit": "ns", "otherData": other}
    path = atomic_write_text(Path(out_dir) / "trace.json", json.dumps(obj, separators=(",", ":")))
    path.chmod(0o644)
    return path


def _as_int(x: Any) -> Optional[int]:
    if isinstance(x, bool):
        return None
    if isinstance(x, int):
        return x
    if isinstance(x, float) and x.is_integer():
        return int(x)
    return None


def normalise_ids(events: list[dict]) -> list[dict]:
    """Give every event integer pid/tid; textual ids become process/thread names."""
    used = [p for e in events if (p := _as_int(e.get("pid"))) is not None]
    next_pid = max(used, default=0) + 1
    pids: dict[str, int] = {}
    tids: dict[tuple[int, str], int] = {}
    named_p: set[int] = {e["pid"] for e in events if e.get("name") == "process_name" and _as_int(e.get("pid")) is not None}
    named_t: set[tuple] = set()
    out, added = [], []
    for e in events:
        e = dict(e)
        pid = _as_int(e.get("pid", 0))
        if pid is None:
            text = str(e.get("pid"))
            if text not in pids:
                pids[text] = next_pid
                next_pid += 1
            pid = pids[text]
            if e.get("name") == "process_name" and isinstance(e.get("args"), Mapping):
                if pid in named_p:
                    continue
                e["args"] = {"name": f"{text} {e['args'].get('name', '')}".strip()}
            if pid not in named_p:
                named_p.add(pid)
                if e.get("name") != "process_name":
                    added.append(process_name(pid, text))
        e["pid"] = pid
        tid = _as_int(e.get("tid", 0))
        if tid is None:
            text = str(e.get("tid"))
            key = (pid, text)
            if key not in tids:
                tids[key] = 100 + sum(1 for p, _ in tids if p == pid)
            tid = tids[key]
            if key not in named_t:
                named_t.add(key)
                added.append(thread_name(pid, tid, text))
        e["tid"] = tid
        out.append(e)
    return added + out


def check_trace(obj: Any, *, allow_nesting: bool = True) -> list[str]:
    """Problems of a Chrome trace object (``{"traceEvents": [...]}``); empty if valid."""
    if not isinstance(obj, Mapping) or not isinstance(obj.get("traceEvents"), list):
        return ["top level: expected an object with a traceEvents list"]
    problems: list[str] = []
    lanes: dict[tuple[int, int], list[tuple[float, float, int]]] = {}
    for i, e in enumerate(obj["traceEvents"]):
        where = f"traceEvents[{i}]"
        if not isinstance(e, Mapping):
            problems.append(f"{where}: not an object")
            continue
        ph = e.get("ph")
        for key in ("name", "ph", "pid", "tid"):
            if key not in e:
                problems.append(f"{where}: missing {key}")
        if not isinstance(e.get("pid", 0), int) or not isinstance(e.get("tid", 0), int):
            problems.append(f"{where}: pid and tid must be integers")
            continue
        if ph == "M":
            if e.get("name") not in _META_NAMES:
                problems.append(f"{where}: unknown metadata event {e.get('name')!r}")
            if not isinstance(e.get("args"), Mapping):
                problems.append(f"{where}: metadata without args")
            continue
        if ph != "X":
            problems.append(f"{where}: ph {ph!r}, expected 'X' or 'M'")
            continue
        ts, dur = e.get("ts"), e.get("dur")
        if not _is_num(ts) or not _is_num(dur):
            problems.append(f"{where}: ts and dur must be numbers")
            continue
        if ts < 0 or dur < 0:
            problems.append(f"{where} ({e.get('name')}): negative ts or dur ({ts}, {dur})")
        if "args" in e and not isinstance(e["args"], Mapping):
            problems.append(f"{where}: args must be an object")
        lanes.setdefault((e["pid"], e["tid"]), []).append((float(ts), float(ts) + float(dur), i))
    for (pid, tid), spans in lanes.items():
        problems.extend(_overlaps(pid, tid, spans, allow_nesting))
    return problems


def _overlaps(pid: int, tid: int, spans: list, allow_nesting: bool) -> list[str]:
    out = []
    stack: list[tuple[float, float, int]] = []   # open enclosing spans
    for start, end, i in sorted(spans, key=lambda s: (s[0], -s[1])):
        while stack and stack[-1][1] <= start + _EPS_US:
            stack.pop()
        if stack:
            outer = stack[-1]
            nested = end <= outer[1] + _EPS_US
            if not (nested and allow_nesting):
                out.append(f"pid {pid} tid {tid}: traceEvents[{i}] overlaps traceEvents[{outer[2]}]")
                continue
        stack.append((start, end, i))
    return out


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)
