"""Issue 21, acceptance: fuzzed serving traces (rows, timestamps, token counts, encodings,
sizes) and fuzzed serving settings through ``rdusim run``, in process, each case under a
time limit. Every case ends with exit 0 or 2 (never a traceback or a hang, never a numpy
RuntimeWarning); an exit 2 is one line; a finished run's metrics are finite numbers (or
null where the document says a value does not exist: a confidence interval from too few
requests, an offered rate from one request, TPOT when no request has a second token),
every request took time, and no arrival vanished."""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import tempfile
import warnings
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings, strategies as st

from rdusim.cli import main
from rdusim.config.workload import REPO_ROOT

from test_serve_robust import time_limit

CASE_SECONDS = 60.0   # a hang detector, not a speed check: the slowest fuzzed case takes ~11 s on a quiet machine (SN40L chunked prefill in 16-token chunks), ~3x that under load
ARCH = str(REPO_ROOT / "arch/sn40l.yaml")
H100 = str(REPO_ROOT / "arch/dgx_h100.yaml")

SERVE = f"""name: fuzz
kind: serve
model: llama2-7b
arrivals: {{process: trace, trace: t.csv, format: plain}}
requests: 12
warmup_requests: 0
too_long: truncate
batching: [continuous, static]
scheduler: {{max_sequences: 4, max_batched_tokens: 4096}}
platforms:
  sn40l: {{arch: {ARCH}, tp: 8, stack: sambanova}}
  dgx_h100: {{arch: {H100}, tp: 8, stack: vllm}}
"""

COE = f"""name: fuzz_coe
kind: serve
model: llama2-7b
arrivals: {{process: trace, trace: t.csv, format: plain}}
requests: 12
warmup_requests: 0
too_long: truncate
batching: [continuous]
scheduler: {{max_sequences: 4}}
coe: {{router: llama2-7b, experts: llama2-7b, count: 6}}
platforms:
  sn40l: {{arch: {ARCH}, tp: 8, stack: sambanova}}
"""

# metric names that may be null (a value that does not exist, docs/results.md), and when
MAY_BE_NULL = (
    (re.compile(r"\.(ttft|tpot|e2e|queue)\.[a-z0-9_]+$"), lambda m, p: m.get(p + "measured", 0) == 0),  # all rejected
    (re.compile(r"_ci_(lo|hi)(_s)?$"), lambda m, p: m.get(p + "measured", 0) < 20),
    (re.compile(r"\.offered_rate_per_s$"), lambda m, p: m.get(p + "measured", 0) < 2),
    (re.compile(r"\.tpot\.[a-z0-9_]+$"), lambda m, p: True),        # every measured output one token long
    (re.compile(r"\.capacity\.nodes_for_traffic$"), lambda m, p: m.get(p + "capacity.max_rate_per_s") == 0),
)
POINT = re.compile(r"^(serve\.[^.]+\.(?:continuous|static|coe)\.(?:load\d+\.)?)")


def run_case(workload_text: str, trace_bytes: bytes | None, args: list[str]):
    """(exit code, stderr, metrics or None, RuntimeWarnings) of one in-process run."""
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "w.yaml").write_text(workload_text)
        if trace_bytes is not None:
            (d / "t.csv").write_bytes(trace_bytes)
        out, err = io.StringIO(), io.StringIO()
        with warnings.catch_warnings(record=True) as caught, time_limit(CASE_SECONDS):
            warnings.simplefilter("always")
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(["run", str(d / "w.yaml"), "--out", str(d / "o"), "--jobs", "1", *args])
        runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
        metrics = json.loads((d / "o" / "results.json").read_text())["metrics"] if code == 0 else None
        return code, err.getvalue(), metrics, runtime


def check_outcome(code, err, metrics, runtime):
    event(f"exit {code}")
    assert not runtime, [str(w.message) for w in runtime]
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err
    if code == 2:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("rdusim: error: "), err
        return
    for key, value in metrics.items():
        if value is None:
            point = POINT.match(key)
            prefix = point.group(1) if point else ""
            assert any(rx.search(key) and when(metrics, prefix) for rx, when in MAY_BE_NULL), key
        else:
            assert isinstance(value, (int, float)) and math.isfinite(value), (key, value)
    for key in metrics:
        if not key.endswith(".arrivals"):
            continue
        p = key[: -len("arrivals")]
        assert metrics[p + "completed"] + metrics[p + "rejected"] == metrics[key], p     # no arrival vanishes
        if metrics.get(p + "measured", 0) > 0:
            assert metrics[p + "ttft.p50_s"] > 0 and metrics[p + "e2e.p50_s"] >= metrics[p + "ttft.p50_s"], p
            assert metrics[p + "queue.p50_s"] >= 0, p


# ---- fuzzed traces ----

FAULTS = ("time", "prompt", "output", "expert", "order", "short_row", "header", "latin1", "binary", "nul",
          "long_field", "huge_field")
BAD_TIMES = ("nan", "inf", "-inf", "-1", "1e300", "", "abc", "1_0", "0x10")
BAD_COUNTS = ("0", "-5", "1.5", "1e3", "", "x", "12345678901234567890123456", "\u0663", "99999999999")


@st.composite
def traces(draw, expert_column=False):
    """A plain trace: clean half the time, else with one or two injected faults; spans and
    row counts from one row at one instant to a few seconds, BOM and line ends varied."""
    n = draw(st.integers(1, 14))
    faults = draw(st.one_of(st.just(frozenset()), st.frozensets(st.sampled_from(FAULTS), min_size=1, max_size=2)))
    gaps = draw(st.lists(st.sampled_from([0.0, 0.0, 1e-9, 0.01, 0.3, 2.5]), min_size=n, max_size=n))
    times = [repr(sum(gaps[: i + 1])) for i in range(n)]
    prompts = [str(draw(st.integers(1, 3000))) for _ in range(n)]
    outputs = [str(draw(st.integers(1, 100))) for _ in range(n)]
    experts = [str(draw(st.integers(0, 5))) for _ in range(n)]
    pick = lambda: draw(st.integers(0, n - 1))  # noqa: E731
    if "time" in faults:
        times[pick()] = draw(st.sampled_from(BAD_TIMES))
    if "order" in faults and n > 1:
        times = times[::-1] if times[0] != times[-1] else times[:-1] + ["-0.5"]
    if "prompt" in faults:
        prompts[pick()] = draw(st.sampled_from(BAD_COUNTS))
    if "output" in faults:
        outputs[pick()] = draw(st.sampled_from(BAD_COUNTS))
    if "expert" in faults:
        experts[pick()] = draw(st.sampled_from(["6", "-1", "a", ""]))
    header = "arrival_s,prompt_tokens,output_tokens" + (",expert" if expert_column else "")
    if "header" in faults:
        header = draw(st.sampled_from([header.upper(), "a,b,c", header + ",extra", ""]))
    rows = [",".join([t, p, o] + ([e] if expert_column else [])) for t, p, o, e in zip(times, prompts, outputs, experts)]
    if "short_row" in faults:
        i = pick()
        rows[i] = rows[i].rsplit(",", 1)[0]
    end = draw(st.sampled_from(["\n", "", "\n\n", "\r\n"]))
    eol = "\r\n" if end == "\r\n" else "\n"
    data = (eol.join([header, *rows]) + end).encode()
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data                                # Excel's byte-order mark
    if "latin1" in faults:
        data += "0,10,10 \xe9\n".encode("latin-1")
    if "binary" in faults:
        data = draw(st.binary(min_size=1, max_size=300))
    if "nul" in faults:
        data = data.replace(b",", b"\x00,", 1)
    if "long_field" in faults:
        data += b"9," + b"1" * 2000 + b",5\n"
    if "huge_field" in faults:
        data += b"9," + b"1" * 200_000 + b",5\n"
    return data


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=traces(), static=st.booleans())
def test_fuzzed_traces_never_hang_trace_back_or_print_impossible_numbers(data, static):
    args = ["--set", "batching=[static]"] if static else []
    check_outcome(*run_case(SERVE, data, args))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=traces(expert_column=True))
def test_fuzzed_traces_through_a_coe(data):
    check_outcome(*run_case(COE, data, []))


# ---- fuzzed serving settings (synthetic arrivals) ----

def _log_uniform(lo, hi):
    return st.floats(math.log10(lo), math.log10(hi)).map(lambda x: float(f"{10 ** x:.3g}"))


@st.composite
def lengths(draw, most):
    kind = draw(st.sampled_from(["fixed", "uniform", "lognormal"]))
    a, b = sorted(draw(st.lists(st.integers(1, most), min_size=2, max_size=2)))
    if kind == "fixed":
        return f"{{distribution: fixed, value: {a}}}"
    if kind == "uniform":
        return f"{{distribution: uniform, min: {a}, max: {b}}}"
    sigma = draw(st.sampled_from([0, 0.5, 2, 10]))
    return f"{{distribution: lognormal, value: {a}, sigma: {sigma}, min: 1, max: {b}}}"


@st.composite
def serving_settings(draw):
    process = draw(st.sampled_from(["poisson", "gamma"]))
    rate = draw(_log_uniform(1e-3, 1e6))
    cv = draw(_log_uniform(1e-2, 1e6))
    sets = [f"arrivals={{process: {process}, rate_per_s: {rate}, cv: {cv}}}",
            f"prompt_tokens={draw(lengths(4000))}", f"output_tokens={draw(lengths(300))}",
            f"requests={draw(st.integers(1, 20))}", f"warmup_requests={draw(st.integers(0, 4))}",
            f"too_long={draw(st.sampled_from(['reject', 'truncate']))}",
            f"batching=[{draw(st.sampled_from(['continuous', 'static']))}]",
            f"scheduler={{max_sequences: {draw(st.integers(1, 64))}, max_batched_tokens: "
            f"{draw(st.sampled_from([16, 512, 4096, 8192]))}, kv_block_tokens: {draw(st.sampled_from([1, 16, 64]))}, "
            f"chunked_prefill: {draw(st.booleans())}, preemption: {draw(st.sampled_from(['recompute', 'swap']))}, "
            f"memory_reserve_fraction: {draw(st.sampled_from([0.0, 0.1, 0.9]))}}}",
            f"slo={{ttft_s: {draw(_log_uniform(1e-6, 100))}, tpot_s: {draw(_log_uniform(1e-6, 10))}}}"]
    if draw(st.integers(0, 3)) == 0:        # about 1 to 40 arrivals expected
        sets.append(f"duration_s={draw(st.integers(1, 40)) / rate:.3g}")
    if draw(st.integers(0, 3)) == 0:
        sets.append(f"rates_per_s=[{draw(_log_uniform(1e-2, 1e4))}]")
        sets.append("sweep_requests=8")
    if draw(st.integers(0, 5)) == 0:
        sets.append("capacity={traffic_per_s: 10, requests: 8, iterations: 3}")
    if draw(st.integers(0, 5)) == 0:
        sets.append("model=llama2-70b")
    return [a for s in sets for a in ("--set", s)]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(args=serving_settings())
def test_all_metrics_finite_over_fuzzed_serving_inputs(args):
    check_outcome(*run_case(SERVE.replace("process: trace, trace: t.csv, format: plain", "process: poisson"),
                            None, args))
