"""MoE experts as individuals (rdusim.engine.offload): the host CPU's roofline, routing,
residency, Fiddler's rule (issue 22 acceptance), memory, determinism, bad input."""

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rdusim.cli import main
from rdusim.config.arch import load_arch
from rdusim.config.model import load_model
from rdusim.config.offload import OffloadRule, Residency, RoutingDist
from rdusim.config.workload import load_workload
from rdusim.engine.offload.costs import expert_bytes, expert_costs, expert_params
from rdusim.engine.offload.residency import ResidentSet, most_popular
from rdusim.engine.offload.routing import layer_popularity, route
from rdusim.engine.offload.run import Tally
from rdusim.graph.tensor import DType

WL = "workloads/mixtral_offload.yaml"
CHEAP = [("output_tokens", 8), ("prompt_tokens", 32), ("offload.replications", 2)]


def rtx_dep(*over):
    loaded = load_workload(WL, [*CHEAP, *over])
    return loaded.deployment("rtx3090", load_model("mixtral-8x7b"))


def test_cpu_expert_roofline_by_hand():
    dep = rtx_dep()
    c = expert_costs(dep)
    p = 3 * 4096 * 14336
    assert expert_params(dep.model) == p and c.expert_bytes == 2 * p
    rate = 16 * 3.4e9 * 32 * 0.5                # 5950X: FP32 FMA peak (no bf16) x gemm efficiency
    bw = 5.12e10 * 0.75
    for n in (1, 7, 300):
        act = 2 * (5e-6 + n * 4096 * 2 / 3.15e10)
        want = 5e-5 + max(2 * n * p / rate, 2 * p / bw) + act
        assert c.in_place_s(n) == pytest.approx(want, rel=1e-12)


def test_amx_host_computes_bf16_natively_zen_does_not():
    h100 = load_arch("arch/dgx_h100.yaml").host_cpu
    zen = load_arch("arch/rtx3090.yaml").host_cpu
    assert h100.compute_format(DType.BF16) is DType.BF16
    assert h100.native_rate(DType.BF16) == 112 * 2.0e9 * 1024
    assert zen.compute_format(DType.BF16) is DType.FP32 and zen.compute_format(DType.INT4) is DType.FP32


def _study(tmp_path, *sets):
    out = tmp_path / "o"
    args = ["run", WL, "--out", str(out)]
    for k, v in [*CHEAP, *sets]:
        args += ["--set", f"{k}={v}"]
    assert main(args) == 0
    return json.loads((out / "results.json").read_text())["metrics"]


def test_fiddler_rule_follows_the_extremes(tmp_path):
    """CPU 1000x faster: every miss runs on the CPU; PCIe 1000x faster: every miss is copied."""
    fast_cpu = [("arch.rtx3090.host_cpu.fp32_flops_per_cycle_per_core.value", 32000.0),
                ("arch.rtx3090.host_cpu.call_s.value", 5e-8),
                ("arch.rtx3090.node.host_dram.bandwidth_bytes_per_s.value", 5.12e13)]
    m = _study(tmp_path, *fast_cpu, ("platforms", {"rtx3090": {"arch": "arch/rtx3090.yaml", "tp": 1}}))
    k = "model.rtx3090.offload.static.fiddler."
    assert m[k + "copies"] == 0 and m[k + "in_place_calls"] > 0
    fast_pcie = [("arch.rtx3090.links.pcie.bandwidth_bytes_per_s.value", 3.15e13),
                 ("arch.rtx3090.links.host_aggregate.bandwidth_bytes_per_s.value", 3.15e13)]
    m = _study(tmp_path, *fast_pcie, ("platforms", {"rtx3090": {"arch": "arch/rtx3090.yaml", "tp": 1}}))
    assert m[k + "in_place_calls"] == 0 and m[k + "copies"] > 0


@settings(max_examples=30, deadline=None)
@given(cpu=st.floats(0.01, 100), pcie=st.floats(0.01, 100), seed=st.integers(0, 2 ** 16))
def test_in_between_the_choice_follows_the_predicted_costs(cpu, pcie, seed):
    dep = rtx_dep(("arch.rtx3090.host_cpu.clock_hz.value", 3.4e9 * cpu),
                  ("arch.rtx3090.links.pcie.bandwidth_bytes_per_s.value", 3.15e10 * pcie))
    c = expert_costs(dep)
    rng = np.random.default_rng(seed)
    counts = route(layer_popularity(4, 8, RoutingDist.ZIPF, 1.0, rng), int(rng.integers(1, 200)), 2, rng)
    t = Tally()
    t.step(counts, ResidentSet(Residency.STATIC, [], 0), c, OffloadRule.FIDDLER)
    want = sum(1 for n in counts.ravel() if n and c.in_place_s(int(n)) < c.copy_run_s(int(n)))
    assert t.in_place == want and t.copies == t.calls - want and t.hits == 0


def test_routing_counts_and_determinism():
    a = route(layer_popularity(3, 8, RoutingDist.ZIPF, 1.2, np.random.default_rng(1)), 50, 2,
              np.random.default_rng(2))
    b = route(layer_popularity(3, 8, RoutingDist.ZIPF, 1.2, np.random.default_rng(1)), 50, 2,
              np.random.default_rng(2))
    assert (a == b).all() and (a.sum(axis=1) == 100).all() and a.max() <= 50


def test_skew_concentrates_tokens():
    rng = np.random.default_rng(0)
    flat = route(layer_popularity(1, 8, RoutingDist.UNIFORM, 0, rng), 4000, 2, rng)[0]
    skew = route(layer_popularity(1, 8, RoutingDist.ZIPF, 2.0, rng), 4000, 2, rng)[0]
    assert skew.max() > flat.max() * 1.3


def test_lru_evicts_least_recent_static_keeps_its_set():
    lru = ResidentSet(Residency.LRU, [(0, 0), (0, 1)], 2)
    lru.hit((0, 0))
    lru.copied((0, 2))
    assert (0, 1) not in lru and (0, 0) in lru and (0, 2) in lru
    static = ResidentSet(Residency.STATIC, [(0, 0)], 1)
    static.copied((0, 2))
    assert (0, 2) not in static and (0, 0) in static
    assert most_popular(np.array([[1, 5], [3, 0]]), 2) == [(0, 1), (1, 0)]


def test_all_resident_means_no_misses(tmp_path):
    m = _study(tmp_path)
    for u in ("fiddler", "always_copy", "always_in_place"):
        assert m[f"model.dgx_h100.offload.static.{u}.hit_rate"] == 1.0
        assert m[f"model.dgx_h100.offload.lru.{u}.copy_bytes"] == 0.0
    assert m["model.rtx3090.oom"] == 1 and m["model.rtx3090.offload.oom"] == 0
    assert 0 < m["model.rtx3090.offload.resident_experts"] < 256
    lo, hi = m["model.rtx3090.offload.static.fiddler.latency_s.ci95_low"], \
        m["model.rtx3090.offload.static.fiddler.latency_s.ci95_high"]
    assert lo <= m["model.rtx3090.offload.static.fiddler.latency_s"] <= hi


def test_same_seed_same_results_bit_for_bit(tmp_path):
    assert _study(tmp_path / "a") == _study(tmp_path / "b")


def test_dense_part_not_fitting_is_oom(tmp_path):
    m = _study(tmp_path, ("arch.rtx3090.device.hbm.capacity_bytes.value", 3.0e9))
    assert m["model.rtx3090.offload.oom"] == 1 and "model.rtx3090.offload.static.fiddler.latency_s" not in m


def test_experts_outside_hbm_must_fit_host_dram(tmp_path):
    m = _study(tmp_path, ("arch.rtx3090.node.host_dram.capacity_bytes.value", 6.0e10))
    assert m["model.rtx3090.offload.oom"] == 1


def test_bad_offload_input_exits_2(tmp_path, capsys):
    assert main(["run", WL, "--out", str(tmp_path / "x"), "--set", "offload.skew=-1"]) == 2
    assert "offload.skew" in capsys.readouterr().err
    assert main(["run", WL, "--out", str(tmp_path / "y"), "--set", "offload.rules=[sometimes]"]) == 2


def test_expert_bytes_with_int4_scales():
    from rdusim.config.formats import Formats, WeightFormat
    cfg = load_model("mixtral-8x7b").with_formats(Formats(weight=WeightFormat(DType.INT4, 128, 2.0)))
    p = 3 * 4096 * 14336
    assert expert_bytes(cfg) == p * 0.5 + p / 128 * 2.0


def _trace_file(path, tokens, layers=32, k=2, experts=8, skew_to=(0, 1)):
    lines = ["token,layer,expert"]
    for t in range(tokens):
        for layer in range(layers):
            picks = skew_to if t % 4 else ((t + layer) % experts, (t + layer + 1) % experts)
            lines += [f"{t},{layer},{e}" for e in picks[:k]]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_routing_trace_replays_recorded_choices(tmp_path):
    f = _trace_file(tmp_path / "trace.csv", 40)
    m = _study(tmp_path, ("offload.routing", "trace"), ("offload.trace", str(f)))
    # experts 0 and 1 of every layer take 3 of 4 tokens: the calibration keeps them in HBM
    assert m["model.rtx3090.offload.static.fiddler.hit_rate"] > 0.5
    assert m["model.dgx_h100.offload.static.fiddler.hit_rate"] == 1.0


def test_bad_routing_trace_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("token,layer,expert\n0,0,0\n")           # one expert where top-2 needs two
    rc = main(["run", WL, "--out", str(tmp_path / "x"), "--set", "offload.routing=trace",
               "--set", f"offload.trace={bad}"])
    assert rc == 2 and "bad.csv" in capsys.readouterr().err
    rc = main(["run", WL, "--out", str(tmp_path / "y"), "--set", "offload.routing=trace"])
    assert rc == 2 and "offload.trace" in capsys.readouterr().err


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2 ** 16), skew=st.floats(0, 3), tokens=st.integers(1, 300), slots=st.integers(0, 256))
def test_fiddler_never_worse_than_either_fixed_rule_with_static_residency(seed, skew, tokens, slots):
    """With a static resident set the choices do not change what is resident, so picking the
    cheaper predicted cost per call can only lower the request's added time."""
    c = expert_costs(rtx_dep())
    rng = np.random.default_rng(seed)
    pop = layer_popularity(32, 8, RoutingDist.ZIPF, skew, rng)
    initial = most_popular(route(pop, 512, 2, rng), slots)
    steps = [route(pop, tokens, 2, rng)] + [route(pop, 1, 2, rng) for _ in range(3)]
    added = {}
    for rule in OffloadRule:
        t, res = Tally(), ResidentSet(Residency.STATIC, initial, slots)
        for counts in steps:
            t.step(counts, res, c, rule)
        added[rule] = t.extra_s
    assert added[OffloadRule.FIDDLER] <= min(added[OffloadRule.ALWAYS_COPY], added[OffloadRule.ALWAYS_IN_PLACE]) + 1e-12


def test_overlap_takes_the_longer_of_device_and_in_place_per_layer():
    c = expert_costs(rtx_dep())
    counts = np.zeros((2, 8), dtype=np.int64)
    counts[0, :3] = (5, 1, 2)             # layer 0: expert 0 resident, 1 and 2 run on the CPU
    counts[1, 4] = 3                      # layer 1: expert 4 on the CPU alone
    resident = [(0, 0)]
    serial, over = Tally(), Tally()
    serial.step(counts, ResidentSet(Residency.STATIC, resident, 1), c, OffloadRule.ALWAYS_IN_PLACE)
    over.step(counts, ResidentSet(Residency.STATIC, resident, 1), c, OffloadRule.ALWAYS_IN_PLACE, overlap=True)
    cpu0, cpu1 = c.in_place_s(1) + c.in_place_s(2), c.in_place_s(3)
    dev = c.device_s
    assert serial.extra_s == pytest.approx(cpu0 - dev(1) - dev(2) + cpu1 - dev(3), rel=1e-12)
    assert over.extra_s == pytest.approx(max(dev(5), cpu0) - dev(5) - dev(1) - dev(2) + cpu1 - dev(3), rel=1e-12)
    assert over.extra_s <= serial.extra_s
