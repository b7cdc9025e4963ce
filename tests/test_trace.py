"""Chrome trace helpers: events, naming, bounds, the validator, the written file."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from rdusim.report.trace import (WINDOW_EVENT, Lane, TraceBuilder, check_trace, span,
                                 write_trace)


def _obj(events):
    return {"traceEvents": list(events)}


def test_span_converts_seconds_to_microseconds():
    e = span("k", 1.5e-3, 2e-6, pid=1, tid=2, cat="kernel", flops=3.0)
    assert e == {"name": "k", "ph": "X", "ts": 1500.0, "dur": 2.0, "pid": 1, "tid": 2,
                 "cat": "kernel", "args": {"flops": 3.0}}


def test_builder_names_processes_and_threads_once():
    tb = TraceBuilder()
    tb.span("a", 0, 1e-6, device="sn40l/socket0", lane=Lane.COMPUTE)
    tb.span("b", 1e-6, 1e-6, device="sn40l/socket0", lane=Lane.COMPUTE)
    tb.span("c", 0, 1e-6, device="host", lane=Lane.LAUNCH)
    tb.span("d", 0, 1e-6, device="host", lane="pcie")
    ev = tb.events()
    procs = {e["args"]["name"]: e["pid"] for e in ev if e["name"] == "process_name"}
    threads = {(e["pid"], e["args"]["name"]): e["tid"] for e in ev if e["name"] == "thread_name"}
    assert procs == {"sn40l/socket0": 1, "host": 2}
    assert threads == {(1, "compute"): 1, (2, "launch"): 2, (2, "pcie"): 5}
    assert [e["name"] for e in ev if e["ph"] == "X"] == ["a", "c", "d", "b"]
    assert check_trace(_obj(ev)) == []


def test_builder_cap_drops_and_says_so():
    tb = TraceBuilder(max_events=3)
    kept = [tb.span(f"k{i}", i * 1e-6, 1e-6, device="gpu0") for i in range(10)]
    assert kept == [True] * 3 + [False] * 7
    assert tb.truncated and tb.dropped == 7 and len(tb) == 3
    win = next(e for e in tb.events() if e["name"] == WINDOW_EVENT)
    assert win["args"]["truncated"] is True and win["args"]["dropped"] == 7


def test_builder_window_keeps_only_spans_starting_inside():
    tb = TraceBuilder(window=(1.0, 2.0))
    for t in (0.5, 1.0, 1.5, 2.0):
        tb.span("k", t, 0.1, device="gpu0")
    assert len(tb) == 2 and tb.dropped == 2


def test_write_trace_is_valid_json_with_other_data(tmp_path):
    tb = TraceBuilder(max_events=2)
    for i in range(4):
        tb.span("k", i * 1e-3, 1e-3, device="sn40l/socket0", lane=Lane.MEMORY, bad=float("nan"))
    path = write_trace(tb.events(), tmp_path)
    obj = json.loads(path.read_text())   # strict JSON: NaN became null
    assert obj["displayTimeUnit"] == "ns"
    assert obj["otherData"]["truncated"] is True and obj["otherData"]["dropped"] == 2
    assert check_trace(obj) == []


def test_write_trace_caps_plain_event_lists(tmp_path):
    events = [span("k", i * 1e-6, 1e-6, 1, 1) for i in range(50)]
    obj = json.loads(write_trace(events, tmp_path, max_events=10).read_text())
    assert len([e for e in obj["traceEvents"] if e["ph"] == "X"]) == 10
    assert obj["otherData"]["truncated"] is True and obj["otherData"]["dropped"] == 40


def test_write_trace_of_no_events_says_so(tmp_path):
    obj = json.loads(write_trace((), tmp_path).read_text())
    assert obj["traceEvents"] == [] and "no trace events" in obj["otherData"]["note"]


def test_check_trace_finds_problems():
    assert check_trace([]) != []
    bad = [
        {"name": "k", "ph": "X", "ts": 0, "dur": -1, "pid": 1, "tid": 1},
        {"ph": "X", "ts": 0, "dur": 1, "pid": 1, "tid": 2},
        {"name": "k", "ph": "X", "ts": "0", "dur": 1, "pid": 1, "tid": 1},
        {"name": "k", "ph": "B", "ts": 0, "pid": 1, "tid": 1},
        {"name": "k", "ph": "X", "ts": 0, "dur": 1, "pid": "1", "tid": 1},
        {"name": "whatever", "ph": "M", "pid": 1, "tid": 1, "args": {}},
    ]
    problems = check_trace(_obj(bad))
    assert len(problems) == 6, problems


def test_check_trace_overlap_rules():
    a = span("a", 0, 10e-6, 1, 1)
    nested = span("b", 2e-6, 3e-6, 1, 1)
    partial = span("c", 5e-6, 10e-6, 1, 1)
    touching = span("d", 10e-6, 1e-6, 1, 1)
    other_thread = span("e", 1e-6, 20e-6, 1, 2)
    assert check_trace(_obj([a, nested, touching, other_thread])) == []
    assert len(check_trace(_obj([a, nested]), allow_nesting=False)) == 1
    assert "overlaps" in check_trace(_obj([a, partial]))[0]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1e-3), st.floats(0, 1e-4)), max_size=40))
def test_back_to_back_spans_always_validate(durs):
    """Spans laid end to end on one lane (as an engine's resource would) never overlap."""
    tb = TraceBuilder()
    t = 0.0
    for gap, d in durs:
        t += gap
        tb.span("k", t, d, device="gpu0")
        t += d
    assert check_trace(_obj(tb.events())) == []


def test_textual_pids_and_tids_are_renumbered_and_named(tmp_path):
    events = [
        {"name": "launch k", "ph": "X", "ts": 0.0, "dur": 20.0, "pid": "sn40l.bench.unfused", "tid": "launcher"},
        {"name": "k", "ph": "X", "ts": 20.0, "dur": 5.0, "pid": "sn40l.bench.unfused", "tid": "socket0"},
        {"name": "k", "ph": "X", "ts": 0.0, "dur": 5.0, "pid": "sn40l.bench.fused_ho", "tid": "socket0"},
        span("g", 0, 1e-6, pid=3, tid=1),
    ]
    obj = json.loads(write_trace(events, tmp_path).read_text())
    assert check_trace(obj) == []
    names = {e["pid"]: e["args"]["name"] for e in obj["traceEvents"] if e["name"] == "process_name"}
    assert sorted(names.values()) == ["sn40l.bench.fused_ho", "sn40l.bench.unfused"]
    assert all(p > 3 for p in names)
    threads = sorted(e["args"]["name"] for e in obj["traceEvents"] if e["name"] == "thread_name")
    assert threads == ["launcher", "socket0", "socket0"]


def test_window_events_of_several_builders_are_merged(tmp_path):
    a, b = TraceBuilder(max_events=1), TraceBuilder(max_events=1)
    for tb in (a, b):
        for i in range(3):
            tb.span("k", i * 1e-6, 1e-6, device="x")
    obj = json.loads(write_trace(a.events() + b.events(), tmp_path).read_text())
    assert obj["otherData"]["truncated"] is True and obj["otherData"]["dropped"] == 4
    assert not any(e["name"] == WINDOW_EVENT for e in obj["traceEvents"])
