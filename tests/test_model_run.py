"""Model runs through the CLI: the table, the metrics contract, --set, and every bad input (exit 2)."""

import json

import pytest

from rdusim.cli import main
from rdusim.config.workload import load_workload
from rdusim.engine.inference import BREAKDOWN_KEYS
from rdusim.studies import model_run

WL = "workloads/llama2_7b_chat.yaml"
H100_WL = "workloads/llama2_7b_chat_h100.yaml"


def _run(capsys, tmp_path, *args):
    code = main(["run", *args, "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_chat_workload_runs_every_platform(capsys, tmp_path):
    code, out, _ = _run(capsys, tmp_path, WL)
    assert code == 0
    for name in ("sn40l", "dgx_h100", "dgx_a100"):
        assert name in out
    data = json.loads((tmp_path / "results.json").read_text())
    m = data["metrics"]
    for name in ("dgx_h100", "dgx_a100"):
        p = f"model.{name}"
        assert m[f"{p}.latency_s"] == pytest.approx(m[f"{p}.ttft_s"] + 19 * m[f"{p}.tpot_s"])
        assert sum(m[f"{p}.breakdown.{k}_s"] for k in BREAKDOWN_KEYS) == pytest.approx(m[f"{p}.latency_s"])
    # the A100 is slower than the H100 with the same software mechanisms
    assert m["model.dgx_a100.latency_s"] > m["model.dgx_h100.latency_s"]
    kernels = [r for r in data["records"] if r["platform"] == "dgx_h100"]
    assert {r["phase"] for r in kernels} == {"prefill", "decode"}
    columns = {"name", "kind", "start_s", "duration_s", "flops", "bytes", "launch_gap_s", "exposed_launch_s"}
    assert columns <= set(kernels[0])


def test_set_overrides_batch_and_tp(capsys, tmp_path):
    code, out, _ = _run(capsys, tmp_path, H100_WL, "--set", "batch_size=8", "--set", "platforms.dgx_h100.tp=4")
    assert code == 0 and "tp4" in out and "batch 8" in out
    m = json.loads((tmp_path / "results.json").read_text())["metrics"]
    assert m["model.dgx_h100.tokens_per_s"] == pytest.approx(8 * 20 / m["model.dgx_h100.latency_s"])


@pytest.mark.parametrize("sets, key", [
    (["platforms.dgx_h100.tp=3"], "platforms.dgx_h100.tp"),        # does not divide 32 heads
    (["platforms.dgx_h100.tp=16"], "platforms.dgx_h100.tp"),       # more GPUs than the node has
    (["platforms.dgx_h100.launch=ho"], "platforms.dgx_h100.launch"),  # an RDU launch mode on a GPU
    (["platforms.dgx_h100.launch=warp"], "platforms.dgx_h100.launch"),  # no such launch mode
    (["platforms.dgx_h100.fusion=maybe"], "platforms.dgx_h100.fusion"),
    (["batch_size=0"], "batch_size"),
    (["output_tokens=-3"], "output_tokens"),
    (["model=no-such-model"], ""),
    (["arch.dgx_h100.launch.eager_s=-1"], "launch.eager_s"),
])
def test_bad_inputs_exit_2_with_one_paragraph(capsys, tmp_path, sets, key):
    args = [H100_WL]
    for s in sets:
        args += ["--set", s]
    code, out, err = _run(capsys, tmp_path, *args)
    assert code == 2
    assert "Traceback" not in err and err.startswith("rdusim: error:")
    assert key in err


def test_missing_engine_is_a_note_not_a_number(monkeypatch):
    def no_engine(dep, *args):
        raise ModuleNotFoundError("No module named 'rdusim.engine.rdu.model_step'", name="rdusim.engine.rdu.model_step")

    monkeypatch.setattr(model_run, "simulate_inference", no_engine)
    loaded = load_workload(WL, [("platforms.sn40l.tp", 8)])
    res = model_run.run(loaded)
    assert res.metrics["model.sn40l.available"] == 0
    assert "model.sn40l.latency_s" not in res.metrics
    assert "engine not available" in model_run.summary(res)


def test_same_inputs_same_results(tmp_path):
    a = model_run.run(load_workload(H100_WL, [("batch_size", 2)]))
    b = model_run.run(load_workload(H100_WL, [("batch_size", 2)]))
    assert a.to_json() == b.to_json()


def test_trace_covers_every_platform(tmp_path):
    import json

    from rdusim.cli import main
    from rdusim.report.trace import check_trace

    assert main(["run", "workloads/llama2_7b_chat.yaml", "--out", str(tmp_path), "--trace"]) == 0
    trace = json.loads((tmp_path / "trace.json").read_text())
    assert check_trace(trace) == []
    names = {e["args"]["name"] for e in trace["traceEvents"] if e.get("name") == "process_name"}
    for platform in ("sn40l", "dgx_h100", "dgx_a100"):
        assert any(n.startswith(platform) for n in names), platform
