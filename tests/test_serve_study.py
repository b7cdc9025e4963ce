"""Serving studies on the real step model: the shipped study's claim, the CLI, bad input."""

import json

import numpy as np
import pytest

from rdusim.cli import main
from rdusim.results import load_result
from rdusim.config.workload import load_workload
from rdusim.config.workload_serve import Batching
from rdusim.cache import RunCache
from rdusim.graph.phase import Phase
from rdusim.serve.platform import ServePlatform, with_scheduler
from rdusim.studies.serve import Streams, _model, serve_point

LLAMA = "workloads/serve_llama2_7b.yaml"
COE = "workloads/serve_coe150.yaml"


def test_continuous_beats_static_on_throughput_at_equal_p99_ttft():
    """On the shipped single-model study (DGX H100, fewer requests): at every load where static
    batching keeps its p99 TTFT, continuous batching has a lower p99 TTFT, and at a load
    static cannot sustain continuous still keeps a p99 TTFT below static's best while
    serving more requests per second."""
    loaded = load_workload(LLAMA, [("requests", 200), ("warmup_requests", 20)])
    cfg = _model(loaded.spec.model, loaded.file, "model")
    plat = ServePlatform.build("dgx_h100", with_scheduler(loaded.deployment("dgx_h100", cfg), loaded.spec.scheduler),
                               RunCache())
    streams = Streams(loaded, cfg.max_position_embeddings)
    res = {}
    for i, rate in enumerate((1.0, 16.0)):
        s = streams.at(rate, 200, i)
        for mode in Batching:
            res[(mode, rate)] = serve_point(plat, mode, s, loaded.spec)[1]
    static_best = min(res[(Batching.STATIC, r)]["ttft.p99_s"] for r in (1.0, 16.0))
    cont = res[(Batching.CONTINUOUS, 16.0)]
    assert cont["ttft.p99_s"] < static_best
    assert cont["requests_per_s"] > 2 * max(res[(Batching.STATIC, r)]["requests_per_s"] for r in (1.0, 16.0))
    for m in res.values():
        assert m["completed"] + m["rejected"] == m["arrivals"]


def test_serving_steps_are_the_engines():
    loaded = load_workload(LLAMA)
    cfg = _model("llama2-7b", loaded.file, "model")
    sm = ServePlatform.build("dgx_h100", loaded.deployment("dgx_h100", cfg), RunCache()).steps
    from rdusim.graph.phase import Phase
    engine = lambda phase, b, n: sm.engine_step(phase, b, n).time_s       # noqa: E731
    assert sm.decode_s(16, 512) == engine(Phase.DECODE, 16, 512) and sm.decode_s(1, 512) == engine(Phase.DECODE, 1, 512)
    for b in (8, 12, 37):                                                       # knots in the batch
        assert sm.decode_s(b, 512) == pytest.approx(engine(Phase.DECODE, b, 512), rel=0.005)
    run = sm.decode_run_s(12, 500.5, 40)
    assert np.allclose(run, [sm.decode_s(12, 500.5 + j) for j in range(40)], rtol=1e-12)
    # a lone prompt, and a uniform batch at powers of two: the engine's step, host work included
    assert sm.packed_prefill_s([(768, 0)]) == pytest.approx(engine(Phase.PREFILL, 1, 768), rel=0.005)
    assert sm.packed_prefill_s([(512, 0)] * 8) == pytest.approx(engine(Phase.PREFILL, 8, 512), rel=1e-9)
    # a chunk over a cached context: the prompt's part plus the engine's extra for the cached tokens
    bare = lambda r: r.time_s - r.breakdown_s["host"]       # noqa: E731
    chunk = sm.packed_prefill_s([(512, 512)])
    want = engine(Phase.PREFILL, 1, 512) + bare(sm.extend(1, 512, 512)) - bare(sm.extend(1, 512, 1))
    assert chunk == pytest.approx(want, rel=0.005)
    # decodes riding along cost less than a decode step of their own
    assert sm.mixed_s([(256, 0)], 8, 700) < sm.packed_prefill_s([(256, 0)]) + sm.decode_s(8, 700)


def test_cli_serve_end_to_end_with_trace(tmp_path):
    out = tmp_path / "o"
    args = ["run", LLAMA, "--out", str(out), "--trace", "--report", "--set", "requests=40",
            "--set", "warmup_requests=5", "--set", "rates_per_s=[4, 8]", "--set", "sweep_requests=30",
            "--set", "capacity.traffic_per_s=0",
            "--set", "batching=[continuous]"]
    assert main(args) == 0
    data = json.loads((out / "results.json").read_text())
    m = data["metrics"]
    for p in ("sn40l", "dgx_h100", "dgx_a100"):
        k = f"serve.{p}.continuous"
        assert m[f"{k}.completed"] + m[f"{k}.rejected"] == m[f"{k}.arrivals"] == 45
        assert m[f"{k}.ttft.p50_s"] <= m[f"{k}.ttft.p99_s"] <= m[f"{k}.e2e.p99_s"]
        assert m[f"{k}.load0.rate_per_s"] == 4
    # the request records in requests.csv (listed in the manifest), a pointer per platform in results.json
    assert not [r for r in data["records"] if r["row"] == "request"]
    pointers = [r for r in data["records"] if r["row"] == "requests"]
    assert [(r["platform"], r["first"], r["count"]) for r in pointers] == [
        ("sn40l", 0, 40), ("dgx_h100", 40, 40), ("dgx_a100", 80, 40)]
    assert "requests.csv" in json.loads((out / "manifest.json").read_text())["files"]
    reqs = [r for r in load_result(out / "results.json").records if r["row"] == "request"]
    assert len(reqs) == 3 * 40 and all(type(r["completed"]) is bool and type(r["id"]) is int for r in reqs)
    table = np.genfromtxt(out / "requests.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
    assert len(table) == 120 and np.allclose(table["ttft_s"], [r["ttft_s"] for r in reqs], rtol=0, atol=0)
    trace = json.loads((out / "trace.json").read_text())
    names = {e["name"] for e in (trace["traceEvents"] if isinstance(trace, dict) else trace) if e.get("ph") == "X"}
    assert {"queue", "prefill", "decode"} <= names
    figures = {p.stem for p in (out / "figures").glob("*.png")}
    assert {"serve_latency_vs_load", "serve_throughput_vs_ttft", "serve_ttft_cdf", "serve_kv_occupancy"} <= figures
    assert "Serving under load" in (out / "report.md").read_text()


def _trace(tmp_path, text):
    p = tmp_path / "t.csv"
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize("sets, needle", [
    (["arrivals.rate_per_s=-1"], "arrivals.rate_per_s"),
    (["slo.ttft_s=0"], "slo.ttft_s"),
    (["rates_per_s=[2, -3]"], "rates_per_s"),
])
def test_bad_settings_exit_2_naming_the_key(tmp_path, capsys, sets, needle):
    args = ["run", LLAMA, "--out", str(tmp_path / "o")]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err and "serve_llama2_7b.yaml" in err
    assert not (tmp_path / "o" / "results.json").exists()


@pytest.mark.parametrize("text, fmt, needle", [
    ("", "plain", "row 1"),
    ("arrival_s,prompt_tokens,output_tokens\n", "plain", "row 2"),
    ("arrival_s,prompt_tokens,output_tokens\n0.5,100,20\n1.0,abc,20\n", "plain", "row 3.prompt_tokens"),
    ("arrival_s,prompt_tokens,output_tokens\n0.5,100,20\n0.2,100,20\n", "plain", "row 3.arrival_s"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\nyesterday,1,1\n", "azure",
     "row 3.TIMESTAMP"),
    ("arrival_s,prompt_tokens,output_tokens,expert\n0.1,100,20,3\n0.2,100,20,150\n", "plain", "row 3.expert"),
])
def test_bad_traces_exit_2_naming_file_row_and_field(tmp_path, capsys, text, fmt, needle):
    path = _trace(tmp_path, text)
    args = ["run", COE, "--out", str(tmp_path / "o"), "--set", f"arrivals.trace={path}",
            "--set", f"arrivals.format={fmt}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert path in err and needle in err
    assert not (tmp_path / "o" / "results.json").exists()


def test_azure_excerpt_reads_with_its_rate():
    from rdusim.config.workload_serve import TraceFormat
    from rdusim.serve.arrivals import read_trace
    t = read_trace("data/azure_conv_excerpt.csv", TraceFormat.AZURE)
    assert len(t.times_s) == 400 and t.prompt[0] == 374 and t.output[0] == 44
    assert t.times_s[1] - t.times_s[0] == pytest.approx(4.3145789, abs=1e-6)
    assert 3 < t.mean_rate_per_s < 4.5


def test_throughput_saturates_at_the_platforms_max_step_rate():
    """DGX H100 (the real step model), 16 sequences at most, fixed 128 in / 64 out, everyone
    at once: the output rate approaches 16 x 64 tokens per (16-sequence prefill + 63 decode
    steps at batch 16) and never exceeds it."""
    loaded = load_workload(LLAMA, [("scheduler.max_sequences", 16), ("scheduler.max_batched_tokens", 2048),
                                   ("warmup_requests", 0)])
    cfg = _model("llama2-7b", loaded.file, "model")
    plat = ServePlatform.build("dgx_h100", with_scheduler(loaded.deployment("dgx_h100", cfg), loaded.spec.scheduler),
                               RunCache())
    from rdusim.serve.arrivals import Arrival, Stream
    arr = tuple(Arrival(1e-6 * i, 128, 64) for i in range(160))
    log, m = serve_point(plat, Batching.CONTINUOUS, Stream(arr, 0, 0), loaded.spec)
    sm = plat.steps
    wave = (sm.packed_prefill_s([(128, 0)] * 16) + 16 * plat.dep.stack.costs.per_request_s
            + sum(sm.decode_s(16, 129 + j) for j in range(63)))
    ceiling = 16 * 64 / wave
    assert 0.97 * ceiling <= m["output_tokens_per_s"] <= 1.001 * ceiling


def test_stack_scheduler_settings_route_through_set(tmp_path):
    loaded = load_workload(LLAMA, [("stack.dgx_h100.scheduler.chunked_prefill", True),
                                   ("stack.sn40l.scheduler.kv_block_tokens", 32)])
    assert loaded.stacks["dgx_h100"].scheduler.chunked_prefill
    assert not loaded.stacks["dgx_a100"].scheduler.chunked_prefill
    assert loaded.stacks["sn40l"].scheduler.kv_block_tokens == 32
    assert main(["run", LLAMA, "--out", str(tmp_path / "o"), "--set", "stack.sn40l.scheduler.max_sequences=0"]) == 2


def test_serving_reports_its_steps_against_their_roofline():
    """serve.<P>.roofline.*: the engine's steps at the main stream's mean lengths against the
    same steps in roofline mode -- never faster than the roofline, and the batch the KV pool
    holds at that context."""
    from rdusim.serve.arrivals import Arrival
    from rdusim.studies.serve_roofline import roofline_metrics

    loaded = load_workload(LLAMA)
    cfg = _model("llama2-7b", loaded.file, "model")
    for name in ("sn40l", "dgx_h100"):
        plat = ServePlatform.build(name, with_scheduler(loaded.deployment(name, cfg), loaded.spec.scheduler),
                                   RunCache())
        arrivals = [Arrival(0.0, 300, 100), Arrival(1.0, 500, 300)]          # mean prompt 400, context 500
        m = roofline_metrics(plat, arrivals)
        assert m["roofline.prefill.tokens"] == 400 and m["roofline.decode_b1.tokens"] == 500
        full = m["roofline.decode_full.batch"]
        assert full == min(plat.scheduler.max_sequences, plat.kv_blocks // -(-500 // plat.scheduler.kv_block_tokens))
        for step in ("decode_b1", "decode_full", "prefill"):
            real, ideal = m[f"roofline.{step}.realistic_s"], m[f"roofline.{step}.ideal_s"]
            assert real >= ideal > 0 and m[f"roofline.{step}.realistic_over_ideal"] == real / ideal
        assert m["roofline.decode_b1.realistic_s"] == plat.steps.engine_step(Phase.DECODE, 1, 500).time_s
    assert roofline_metrics(plat, []) == {}
