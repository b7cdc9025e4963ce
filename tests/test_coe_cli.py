"""`rdusim run` on a CoE workload end to end, with the real engines."""

import json

from rdusim.cli import main

SMALL = "tests/data/coe_small.yaml"


def test_run_writes_results_with_the_contract_keys(tmp_path, capsys):
    assert main(["run", SMALL, "--out", str(tmp_path), "--trace"]) == 0
    out = capsys.readouterr().out
    assert "Speedup of sn40l" in out and "results:" in out
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["workload"]["kind"] == "coe" and set(data["archs"]) == {"sn40l", "dgx_h100"}
    m = data["metrics"]
    for p in ("sn40l", "dgx_h100"):
        for key in ("latency_s", "router_s", "switch_s", "expert_s", "oom"):
            assert f"coe.{p}.bs4.tok5.{key}" in m
        assert f"coe.capacity.{p}.max_experts" in m and f"coe.capacity.{p}.hbm_experts" in m
        assert f"coe.footprint.{p}.nodes_for60" in m
        assert m[f"coe.{p}.bs4.tok5.experts400.oom"] in (0, 1)
    assert 0 < m["coe.speedup.sn40l_vs_dgx_h100.bs1.tok5.overall"] < 100
    assert m["coe.speedup.sn40l_vs_dgx_h100.switch"] > 1
    # the engines' own time split is in the records, and sums to the expert latency
    rows = [r for r in data["records"] if r.get("row") == "model_timing"]
    assert rows and all(abs(sum(r[k] for k in r if k.endswith("_s") and k not in ("ttft_s", "tpot_s", "latency_s", "ideal_latency_s"))
                            - r["latency_s"]) < 1e-9 * max(1.0, r["latency_s"]) for r in rows)
    assert all(r["ideal_latency_s"] > 0 and r["realistic_over_ideal"] >= 1 for r in rows)
    trace = json.loads((tmp_path / "trace.json").read_text())
    assert any(e.get("ph") == "X" for e in trace["traceEvents"])


def test_bad_input_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", SMALL, "--out", str(out), "--set", "batch_sizes=[0]"]) == 2
    assert "batch_sizes" in capsys.readouterr().err
    assert not out.exists()
