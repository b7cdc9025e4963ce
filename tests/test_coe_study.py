"""The CoE study on a small workload, with engine timings replaced by a known model so the
serving logic is checked by hand; the real engines are exercised in test_coe_cli.py."""

import math

import pytest

from rdusim.config.workload import load_workload
from rdusim.engine.inference import InferenceTiming
from rdusim.errors import InputError
from rdusim.studies import coe

SMALL = "tests/data/coe_small.yaml"
TOKEN_S = {"rdu": 0.003, "gpu": 0.0045}


def fake(dep, prompt_tokens, output_tokens, batch, cache=None, cold=False):
    """ttft 10 ms, then a fixed time per token: hand-computable expert times."""
    tpot = TOKEN_S[dep.arch.kind.value]
    lat = 0.010 + (output_tokens - 1) * tpot
    return InferenceTiming(0.010, tpot, lat, {"compute": lat}, {}, {"compute": tpot}, 1.0, 0.0)


def run(overrides=(), seed=None):
    return coe.run(load_workload(SMALL, list(overrides), seed), simulate=fake)


def test_batch_latency_is_router_plus_switch_plus_expert():
    m = run().metrics
    for p in ("sn40l", "dgx_h100"):
        for bs in (1, 4):
            k = f"coe.{p}.bs{bs}.tok5"
            assert m[f"{k}.latency_s"] == pytest.approx(m[f"{k}.router_s"] + m[f"{k}.switch_s"] + m[f"{k}.expert_s"])
            assert m[f"{k}.router_s"] == pytest.approx(0.010)        # router: prefill only
    # one prompt per batch: one expert run of 10 ms + 4 tokens
    assert m["coe.sn40l.bs1.tok5.expert_s"] == pytest.approx(0.010 + 4 * 0.003)


def test_switch_time_is_switches_times_the_lone_copy():
    m = run().metrics
    for p in ("sn40l", "dgx_h100"):
        k = f"coe.{p}.bs4.tok5"
        assert m[f"{k}.switch_s"] == pytest.approx(m[f"{k}.switches_per_batch"] * m[f"coe.{p}.lone_switch_s"])


def test_all_experts_in_hbm_means_no_switching_and_the_jump_past_capacity():
    m = run().metrics
    hbm = int(m["coe.capacity.dgx_h100.hbm_experts"])
    assert 10 <= hbm < 60
    assert m["coe.dgx_h100.bs4.tok5.experts10.hit_rate"] == 1.0
    assert m["coe.dgx_h100.bs4.tok5.experts60.hit_rate"] < 1.0
    jump_dgx = m["coe.dgx_h100.bs4.tok5.experts60.latency_s"] / m["coe.dgx_h100.bs4.tok5.experts10.latency_s"]
    jump_rdu = m["coe.sn40l.bs4.tok5.experts60.latency_s"] / m["coe.sn40l.bs4.tok5.experts10.latency_s"]
    # a miss costs the DGX a host copy (~15x the SN40L's DDR copy): its latency jumps far more
    # (8 sweep batches of one routing: the size of the jump depends on that routing)
    assert jump_dgx > 1.5 and jump_rdu < 1.5 and jump_dgx - 1 > 3 * (jump_rdu - 1)


def test_oom_is_a_result_not_a_crash():
    r = run()
    m = r.metrics
    assert m["coe.dgx_h100.bs4.tok5.experts400.oom"] == 1
    assert "coe.dgx_h100.bs4.tok5.experts400.latency_s" not in m
    assert m["coe.sn40l.bs4.tok5.experts400.oom"] == 0
    assert "exceed HBM + host DRAM" in r.extra["oom_reasons"]["coe.dgx_h100.bs4.tok5.experts400"]


def test_speedups_and_footprint():
    m = run().metrics
    assert m["coe.speedup.sn40l_vs_dgx_h100.switch"] == pytest.approx(
        m["coe.dgx_h100.lone_switch_s"] / m["coe.sn40l.lone_switch_s"])
    assert m["coe.speedup.sn40l_vs_dgx_h100.bs1.tok5.expert"] == pytest.approx(
        (0.010 + 4 * 0.0045) / (0.010 + 4 * 0.003))
    hbm = m["coe.capacity.dgx_h100.hbm_experts"]
    assert m["coe.footprint.dgx_h100.nodes_for60"] >= math.ceil(60 / hbm)
    assert m["coe.footprint.sn40l.nodes_for60"] == 1


def test_deterministic_per_seed_and_seeds_change_routing_not_statistics():
    a, b = run(), run()
    assert a.metrics == b.metrics and a.records == b.records
    c = run(seed=11)
    routes_a = [r["distinct_experts"] for r in a.records if r.get("platform") == "sn40l" and "batch" in r and "row" not in r]
    routes_c = [r["distinct_experts"] for r in c.records if r.get("platform") == "sn40l" and "batch" in r and "row" not in r]
    assert a.records != c.records
    # same distribution: hit rates agree within sampling noise
    for p in ("sn40l", "dgx_h100"):
        assert abs(a.metrics[f"coe.{p}.bs4.tok5.hit_rate"] - c.metrics[f"coe.{p}.bs4.tok5.hit_rate"]) < 0.25
    assert len(routes_a) == len(routes_c)


def test_zipf_routing_raises_the_hit_rate():
    uni = run().metrics["coe.dgx_h100.bs4.tok5.experts60.hit_rate"]
    zipf = run([("routing.distribution", "zipf"), ("routing.skew", 1.2)]).metrics["coe.dgx_h100.bs4.tok5.experts60.hit_rate"]
    assert zipf > uni


def test_prefetch_hides_switching_behind_expert_runs():
    many = [("experts.count", 150)]
    base = run(many).metrics["coe.dgx_h100.bs4.tok5.switch_s"]
    pre = run(many + [("cache.prefetch", True)]).metrics["coe.dgx_h100.bs4.tok5.switch_s"]
    assert 0 < pre < base


def test_trace_routing(tmp_path):
    r = run([("routing", {"distribution": "trace", "trace": "tests/data/coe_trace.yaml"})])
    assert r.metrics["coe.sn40l.bs1.tok5.hit_rate"] == 1.0     # 4 experts, all fit in HBM


@pytest.mark.parametrize("overrides, key", [
    ([("routing", {"distribution": "trace"})], "routing.trace"),
    ([("reference", "tpu")], "reference"),
    ([("batch_sizes", [0])], "batch_sizes"),
    ([("cache.policy", "fifo")], "cache.policy"),
    ([("experts.count", -1)], "experts.count"),
])
def test_bad_workload_values_name_the_key(overrides, key):
    with pytest.raises(InputError) as e:
        run(overrides)
    assert e.value.key == key


def test_bad_trace_file(tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text("[0, 99]\n")
    with pytest.raises(InputError) as e:
        run([("routing", {"distribution": "trace", "trace": str(bad)})])
    assert "below experts.count" in str(e.value)


def test_unknown_expert_model_names_the_workload_key():
    with pytest.raises(InputError) as e:
        run([("experts.model", "nope")])
    assert e.value.key == "experts.model" and e.value.file.endswith("coe_small.yaml")


def test_cli_wrong_unit_in_arch_override_exits_2(capsys):
    from rdusim.cli import main
    rc = main(["run", SMALL, "--set", "arch.sn40l.socket.hbm.bandwidth_bytes_per_s=2TB/s"])
    err = capsys.readouterr().err
    assert rc == 2 and "socket.hbm.bandwidth_bytes_per_s" in err and "bytes per second" in err
    assert "Traceback" not in err


def test_switching_starts_exactly_past_the_hbm_capacity():
    cap = {p: int(run().metrics[f"coe.capacity.{p}.hbm_experts"]) for p in ("sn40l", "dgx_h100")}
    for p, n in cap.items():
        m = run([("sweep_experts", [n, n + 8])]).metrics
        assert m[f"coe.{p}.bs4.tok5.experts{n}.hit_rate"] == 1.0
        assert m[f"coe.{p}.bs4.tok5.experts{n + 8}.hit_rate"] < 1.0
