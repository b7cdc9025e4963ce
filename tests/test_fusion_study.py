"""The fusion study end to end: the CLI on a small workload, its metric keys, records,
summary, a GPU platform beside the RDU, and every bad input a user can write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rdusim.cli import main
from rdusim.config.workload import load_workload
from rdusim.studies import run_study, summarize

SMALL = "tests/data/fusion_small.yaml"
MODES = ("unfused", "fused_so", "fused_ho")
KEYS = ("time_s", "kernels", "hbm_bw_util", "pcu_util", "pmu_util", "oi_flops_per_byte")


@pytest.fixture(scope="module")
def result():
    return run_study(load_workload(SMALL))


def test_cli_run_writes_every_fusion_metric(tmp_path, capsys):
    assert main(["run", SMALL, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "llama_decode" in out and "so/unfused" in out
    data = json.loads((tmp_path / "results.json").read_text())
    m = data["metrics"]
    assert data["workload"]["kind"] == "fusion"
    for b in ("llama_decode", "llama_prefill", "fft"):
        for mode in MODES:
            for key in KEYS:
                assert f"fusion.{b}.{mode}.{key}" in m
                assert f"fusion.{b}.sn40l.{mode}.{key}" in m
        for sp in ("fused_so_vs_unfused", "fused_ho_vs_unfused", "fused_ho_vs_fused_so"):
            assert m[f"fusion.{b}.speedup.{sp}"] > 0
    rows = data["records"]
    assert {r["mode"] for r in rows} == set(MODES)
    assert all({"benchmark", "kernel", "time_s", "hbm_bytes", "pcu_util", "pmu_util", "flops"} <= set(r) for r in rows)


def test_metrics_are_consistent(result):
    m = result.metrics
    for b in ("llama_decode", "llama_prefill", "fft"):
        assert m[f"fusion.{b}.speedup.fused_so_vs_unfused"] == pytest.approx(
            m[f"fusion.{b}.unfused.time_s"] / m[f"fusion.{b}.fused_so.time_s"])
        assert m[f"fusion.{b}.fused_so.kernels"] == m[f"fusion.{b}.fused_ho.kernels"] < m[f"fusion.{b}.unfused.kernels"]
        for mode in MODES:
            for u in ("hbm_bw_util", "pcu_util", "pmu_util"):
                assert 0 <= m[f"fusion.{b}.{mode}.{u}"] <= 1
        assert m[f"fusion.{b}.fused_ho.oi_flops_per_byte"] > m[f"fusion.{b}.unfused.oi_flops_per_byte"]
    assert m["fusion.fft.fused_ho.kernels"] == 1
    assert m["fusion.llama_decode.fused_ho.time_s"] < m["fusion.llama_decode.fused_so.time_s"]
    rows = [r for r in result.records if r["benchmark"] == "llama_decode" and r["mode"] == "fused_so"]
    assert len(rows) == m["fusion.llama_decode.fused_so.kernels"]
    assert "fft" in summarize(result)


def test_same_seed_same_results(result):
    again = run_study(load_workload(SMALL))
    assert again.metrics == result.metrics and again.records == result.records


def test_set_overrides_reach_the_arch(result):
    slow = run_study(load_workload(SMALL, [("arch.sn40l.launch.software_s", {"value": 1e-3, "source": "what-if"})]))
    assert slow.metrics["fusion.llama_decode.fused_so.time_s"] > result.metrics["fusion.llama_decode.fused_so.time_s"]


def test_a_gpu_platform_gets_unfused_and_fused(tmp_path):
    pytest.importorskip("rdusim.engine.gpu.step")
    wl = yaml.safe_load(Path(SMALL).read_text())
    wl["benchmarks"] = wl["benchmarks"][:1]
    wl["platforms"]["dgx_h100"] = {"arch": "arch/dgx_h100.yaml", "tp": 8}
    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump(wl))
    res = run_study(load_workload(path))
    m = res.metrics
    assert m["fusion.llama_decode.dgx_h100.unfused.time_s"] > 0
    assert m["fusion.llama_decode.dgx_h100.fused.time_s"] > 0
    assert m["fusion.llama_decode.fused_ho.time_s"] == m["fusion.llama_decode.sn40l.fused_ho.time_s"]
    assert "dgx_h100" in summarize(res)


def _bad(tmp_path, mutate) -> Path:
    wl = yaml.safe_load(Path(SMALL).read_text())
    mutate(wl)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(wl))
    return path


@pytest.mark.parametrize("mutate,needle", [
    (lambda w: w["benchmarks"][0].update(colour="red"), "benchmarks[0].colour"),
    (lambda w: w["benchmarks"][0].pop("phase"), "benchmarks[0].phase"),
    (lambda w: w["benchmarks"][0].update(name="a.b"), "benchmarks[0].name"),
    (lambda w: w["benchmarks"][1].update(name="llama_decode"), "benchmarks[1].name"),
    (lambda w: w["benchmarks"][0].update(phase="sideways"), "benchmarks[0].phase"),
    (lambda w: w["benchmarks"][0].update(tp=16), "benchmarks[0].tp"),
    (lambda w: w["benchmarks"][0].update(tp=3), "tp"),
    (lambda w: w["benchmarks"][0].update(weight_density=1.5), "benchmarks[0].weight_density"),
    (lambda w: w["benchmarks"][0].update(model="no-such-model"), "model"),
    (lambda w: w["benchmarks"][2].update(n=1000, order=9), "order"),
    (lambda w: w.update(benchmarks=[]), "benchmarks"),
    (lambda w: w.update(execution={"tiles": 0}), "execution.tiles"),
])
def test_bad_input_exits_2_naming_the_key(tmp_path, capsys, mutate, needle):
    path = _bad(tmp_path, mutate)
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_shipped_workloads_load():
    suite = load_workload("workloads/fusion_suite.yaml")
    names = [b.name for b in suite.spec.benchmarks]
    assert len(names) == 17 and "flashfftconv_1m" in names and "sparsegpt_13b_2k_train" in names
    assert all("." not in n for n in names)
    assert load_workload("workloads/monarch_fft.yaml").spec.benchmarks[0].model == "monarch_fft"
