"""Issue 21, serving inputs: traces that hung the serving loops, inputs that ended in a
traceback, and trace files read as a user expects (BOM, trailing blank line). Each case
runs under a time limit, so a hang fails instead of blocking the suite."""

from __future__ import annotations

import json
import math
import signal
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from rdusim.cli import main
from rdusim.config.stack import SchedulerSpec
from rdusim.config.workload import REPO_ROOT
from rdusim.config.workload_coe import CachePolicy
from rdusim.config.workload_serve import CoePolicy
from rdusim.serve.arrivals import Arrival
from rdusim.serve.coe import CoeSetup, run_coe
from rdusim.serve.continuous import run_continuous
from rdusim.serve.guard import ClockGuard, ClockOutOfRange, Stalled
from rdusim.serve.server import ServerSetup
from rdusim.serve.static import run_static

LLAMA = str(REPO_ROOT / "workloads/serve_llama2_7b.yaml")
COE = str(REPO_ROOT / "workloads/serve_coe150.yaml")
SMALL = ["--set", "requests=20", "--set", "warmup_requests=0", "--set", "rates_per_s=[]",
         "--set", "capacity.traffic_per_s=0", "--set", "batching=[continuous]", "--jobs", "1"]
PLAIN = "arrival_s,prompt_tokens,output_tokens\n"
AZURE = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


class TimeLimit(Exception):
    pass


@contextmanager
def time_limit(seconds: float):
    """Fail (raise TimeLimit) instead of hanging: the serving loops are pure Python, so the
    alarm interrupts them."""
    def fire(signum, frame):
        raise TimeLimit(f"still running after {seconds} s")
    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run(capsys, tmp_path, workload, *args, limit=60.0):
    """``rdusim run`` in process within ``limit`` seconds: (exit code, stdout, stderr, metrics or None)."""
    out = tmp_path / "out"
    with time_limit(limit):
        code = main(["run", workload, "--out", str(out), *args])
    o, e = capsys.readouterr()
    assert "Traceback" not in e
    metrics = json.loads((out / "results.json").read_text())["metrics"] if code == 0 else None
    return code, o, e, metrics


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("rdusim: error: "), err
    return lines[0]


def trace(tmp_path, text: str | bytes, name="t.csv") -> str:
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return str(p)


def plain_args(path):
    return ["--set", f"arrivals.trace={path}", "--set", "arrivals.format=plain"]


# ---- hangs ----

@pytest.mark.parametrize("workload", [LLAMA, COE])
@pytest.mark.parametrize("text", [PLAIN + "0.5,100,10\n",                       # one row
                                  PLAIN + "2,100,10\n2,50,5\n2,300,20\n"])     # every arrival at one instant
def test_a_trace_spanning_no_time_runs_as_given(capsys, tmp_path, workload, text):
    args = ["--set", "arrivals.process=trace", *plain_args(trace(tmp_path, text))]
    code, out, err, m = run(capsys, tmp_path, workload, *args, *SMALL, limit=60)
    assert code == 0, err
    mode = "coe" if workload == COE else "continuous"
    rows = len(text.strip().splitlines()) - 1
    for p in ("sn40l", "dgx_h100"):
        assert m[f"serve.{p}.{mode}.completed"] == rows
        assert m[f"serve.{p}.{mode}.ttft.p50_s"] > 0
        assert f"serve.{p}.{mode}.rate_per_s" not in m       # no recorded rate: none made up


def test_a_zero_span_trace_refuses_a_load_sweep(capsys, tmp_path):
    path = trace(tmp_path, PLAIN + "0,100,10\n0,100,10\n")
    code, _, err, _ = run(capsys, tmp_path, LLAMA, "--set", "arrivals.process=trace", *plain_args(path), *SMALL,
                          "--set", "rates_per_s=[1,2]")
    assert code == 2 and "rates_per_s" in one_line(err) and "one instant" in err


@pytest.mark.parametrize("stamp", ["2023-11-16 18:15:nan", "2023-11-16 18:15:inf", "2023-11-16 99:15:46.5",
                                   "2023-11-16 18:61:00", "2023-11-16 18:15:60.5", "2023-13-16 18:15:00",
                                   "2023-11-16 18:15:1e1", "2023-11-16T18:15:46"])
def test_azure_timestamps_must_be_clock_times(capsys, tmp_path, stamp):
    path = trace(tmp_path, AZURE + f"{stamp},100,10\n2023-11-16 18:15:47,100,10\n")
    code, _, err, _ = run(capsys, tmp_path, COE, "--set", f"arrivals.trace={path}", *SMALL, limit=30)
    line = one_line(err)
    assert code == 2 and "row 2.TIMESTAMP" in line and "hour 0-23" in line


def _fixed_costs(p=0.02, d=0.01):
    class Fixed:
        def decode_s(self, batch, context):
            return d

        def decode_run_s(self, batch, context, steps):
            return np.full(steps, d)

        def packed_prefill_s(self, pieces):
            return p

        def mixed_s(self, pieces, decode_batch, decode_context):
            return p if pieces else d
    return Fixed()


NAN_ARRIVALS = [Arrival(0.0, 10, 3), Arrival(math.nan, 10, 3), Arrival(math.nan, 10, 3)]


@pytest.mark.parametrize("loop", ["continuous", "chunked", "static", "coe"])
@pytest.mark.parametrize("arrivals", [NAN_ARRIVALS, [Arrival(0.0, 10, 3), Arrival(math.inf, 10, 3)],
                                      [Arrival(0.0, 10, 3), Arrival(2e8, 10, 3)]])
def test_every_serving_loop_stops_on_a_clock_it_cannot_follow(loop, arrivals):
    """The old hang: a NaN arrival time (from a zero-span replay) made the continuous and
    CoE loops spin forever. Every loop now stops with ClockOutOfRange (input's fault)."""
    with time_limit(20), pytest.raises(ClockOutOfRange):
        if loop == "coe":
            run_coe(CoeSetup(router=_fixed_costs(0.01, 0.0), expert=_fixed_costs(), experts=2, slots=1,
                             cache_policy=CachePolicy.LRU, prefetch=False, switch_s=0.1, policy=CoePolicy.FIFO,
                             max_wait_s=1.0, max_sequences=4, kv_block_tokens=16, kv_blocks=1000),
                    [Arrival(a.arrival_s, a.prompt_tokens, a.output_tokens, 0) for a in arrivals])
        else:
            sched = SchedulerSpec(max_sequences=4, chunked_prefill=loop == "chunked")
            (run_static if loop == "static" else run_continuous)(
                ServerSetup(_fixed_costs(), sched, kv_blocks=1000), arrivals)


def test_the_guard_stops_a_loop_that_stands_still():
    guard = ClockGuard("a loop", [])
    guard.tick(1.0)                       # the clock reached 1 s
    for _ in range(guard.still_limit):
        guard.tick(1.0)
    with pytest.raises(Stalled, match="no progress in simulated time"):
        guard.tick(1.0)
    guard.tick(1.5)                       # progress resets the count
    guard.tick(1.5)


# ---- tracebacks that became one line and exit 2 ----

def _bad_trace_cases():
    return [
        ("binary", bytes(range(256)) * 4, "row 2", "UTF-8"),      # byte 10 ends line 1
        ("binary, first line", b"\x89PNG\r\n\x1a\n" + bytes(range(128, 256)), "row 1", "UTF-8"),
        ("26 digits", PLAIN + "0,12345678901234567890123456,10\n1,100,10\n", "row 2.prompt_tokens", "1048576"),
        ("200k field", PLAIN + "0," + "1" * 200_000 + ",10\n1,100,10\n", "row 2", "CSV row"),
        ("2k field", PLAIN + "0," + "1" * 2000 + ",10\n1,100,10\n", "row 2", "1024 characters"),
        ("NUL", PLAIN + "0,100\x00,10\n", "row 2", "NUL"),
        ("nan time", PLAIN + "nan,100,10\n", "row 2.arrival_s", "finite"),
        ("inf time", PLAIN + "0,100,10\ninf,100,10\n", "row 3.arrival_s", "finite"),
        ("negative time", PLAIN + "-1,100,10\n", "row 2.arrival_s", "finite"),
        ("huge span", PLAIN + "0,100,10\n1e12,100,10\n", "row 3.arrival_s", "1e+08"),
        ("zero tokens", PLAIN + "0,0,10\n", "row 2.prompt_tokens", "from 1"),
        ("float tokens", PLAIN + "0,1.5,10\n", "row 2.prompt_tokens", "integer"),
        ("unsorted", PLAIN + "1,100,10\n0.5,100,10\n", "row 3.arrival_s", "previous row"),
        ("short row", PLAIN + "0,100\n", "row 2", "3 fields"),
        ("header only", PLAIN, "row 2", "at least one request"),
        ("empty", "", "row 1", "header"),
        ("latin-1", PLAIN.encode() + "0,100,10 \xe9\n".encode("latin-1"), "row 2", "UTF-8"),
    ]


@pytest.mark.parametrize("name,text,where,needle", _bad_trace_cases(), ids=[c[0] for c in _bad_trace_cases()])
def test_bad_trace_files_are_one_line_exit_2(capsys, tmp_path, name, text, where, needle):
    path = trace(tmp_path, text)
    code, _, err, _ = run(capsys, tmp_path, LLAMA, "--set", "arrivals.process=trace", *plain_args(path), *SMALL,
                          limit=30)
    line = one_line(err)
    assert code == 2 and path in line and where in line and needle in line, line
    assert not (tmp_path / "out" / "results.json").exists()


@pytest.mark.parametrize("what,make", [
    ("a directory", lambda d: (d / "dir").mkdir() or d / "dir"),
    ("a symbolic link loop", lambda d: (d / "a").symlink_to(d / "b") or (d / "b").symlink_to(d / "a") or d / "a"),
    ("a device", lambda d: Path("/dev/null")),
    ("no such file", lambda d: d / "missing.csv"),
])
def test_a_trace_path_that_is_not_a_file_says_what_it_is(capsys, tmp_path, what, make):
    path = make(tmp_path)
    code, _, err, _ = run(capsys, tmp_path, LLAMA, "--set", "arrivals.process=trace", *plain_args(path), *SMALL)
    line = one_line(err)
    assert code == 2 and "arrivals.trace" in line and what in line, line


@pytest.mark.parametrize("sets,key,needle", [
    (["batching=[continuous, continuous]"], "batching", "at most once"),
    (["duration_s=1e12"], "duration_s", "1e+08"),
    (["duration_s=1e6", "arrivals.rate_per_s=1e6"], "duration_s", "expected arrivals"),
    (["platforms={}"], "platforms", "at least one platform"),
    (["arrivals.time_scale=1e-300", "arrivals.process=trace"], "arrivals.time_scale", "from 1e-21"),
    (["arrivals.rate_per_s=1e-30"], "arrivals.rate_per_s", "per second"),
    (["arrivals.rate_per_s=1e-7"], "arrivals.rate_per_s", "within 1e+08 s"),
    (["rates_per_s=[1, 1e-8]"], "rates_per_s[1]", "within 1e+08 s"),
    (["capacity.iterations=1e9"], "capacity.iterations", "<= 30"),
    (["arrivals.cv=1e9", "arrivals.process=gamma"], "arrivals.cv", "<= 1000000"),
    (["prompt_tokens.sigma=1e6"], "prompt_tokens.sigma", "<= 10"),
    (["arch.sn40l.socket.ddr.bandwidth_bytes_per_s=1e-300"], "socket.ddr.bandwidth_bytes_per_s", "bytes per second"),
    (["scheduler.max_batched_tokens=64"], "scheduler.max_batched_tokens", "chunked_prefill"),
])
def test_impossible_serving_settings_are_one_line_exit_2(capsys, tmp_path, sets, key, needle):
    args = [a for s in sets for a in ("--set", s)]
    code, _, err, _ = run(capsys, tmp_path, LLAMA, *SMALL, *args, limit=30)
    line = one_line(err)
    assert code == 2 and key in line and needle in line, line


def test_duration_with_bursty_arrivals_is_bounded(capsys, tmp_path):
    """Gamma arrivals with cv 1e6 put almost every arrival at t = 0: drawing them until
    duration_s ends would never stop (or allocate without bound)."""
    code, _, err, _ = run(capsys, tmp_path, LLAMA, *SMALL, "--set", "arrivals={process: gamma, rate_per_s: 5, cv: 1e6}",
                          "--set", "duration_s=100", limit=60)
    assert code == 2 and "duration_s" in one_line(err) and "arrivals within duration_s" in err


def test_a_prompt_longer_than_the_step_budget_is_refused_on_the_platform_that_has_it(capsys, tmp_path):
    path = trace(tmp_path, PLAIN + "0,100,10\n0.5,300,10\n")
    args = ["--set", "arrivals.process=trace", *plain_args(path), *SMALL, "--set", "scheduler={max_sequences: 8}",
            "--set", "stack.dgx_h100.scheduler.max_batched_tokens=200"]
    code, _, err, _ = run(capsys, tmp_path, LLAMA, *args)
    line = one_line(err)
    assert code == 2 and "stack.dgx_h100.scheduler.max_batched_tokens" in line and "300 tokens" in line
    code, _, err, _ = run(capsys, tmp_path, LLAMA, *args, "--set", "stack.dgx_h100.scheduler.chunked_prefill=true")
    assert code == 0, err


def test_a_clock_past_its_span_is_exit_2_naming_the_platform(capsys, tmp_path):
    code, _, err, _ = run(capsys, tmp_path, LLAMA, *SMALL, "--set", "arch.sn40l.socket.hbm.bandwidth_bytes_per_s=1")
    line = one_line(err)
    assert code == 2 and "platform sn40l" in line and "the clock reached" in line


# ---- traces as a user writes them ----

@pytest.mark.parametrize("text", [
    "\ufeff" + PLAIN + "0,100,10\n1,50,5\n",                # a UTF-8 byte-order mark (Excel writes one)
    PLAIN + "0,100,10\n1,50,5\n\n",                         # a trailing blank line
    PLAIN + "0,100,10\n\n1,50,5\n\n\n",                     # blank lines anywhere
    PLAIN.replace("\n", "\r\n") + "0,100,10\r\n1,50,5\r\n",  # Windows line ends
])
def test_bom_and_blank_lines_are_accepted(capsys, tmp_path, text):
    code, _, err, m = run(capsys, tmp_path, LLAMA, "--set", "arrivals.process=trace",
                          *plain_args(trace(tmp_path, text)), *SMALL)
    assert code == 0, err
    assert m["serve.sn40l.continuous.completed"] == 2


def test_row_numbers_are_lines_of_the_file_when_blank_lines_are_skipped(capsys, tmp_path):
    path = trace(tmp_path, PLAIN + "0,100,10\n\n1,abc,5\n")
    code, _, err, _ = run(capsys, tmp_path, LLAMA, "--set", "arrivals.process=trace", *plain_args(path), *SMALL)
    assert code == 2 and "row 4.prompt_tokens" in one_line(err)
