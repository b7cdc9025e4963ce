"""Report building blocks: metric-key parsing, kernel rows, roofs, colours, formatting."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdusim.config.arch import load_arch
from rdusim.report.colors import platform_color
from rdusim.report.document import fmt
from rdusim.report.kernels import kernel_points, roofs, utilisation_rows
from rdusim.report.keys import Scenario, coe_view, fusion_view, model_view, platform_order
from rdusim.results import plain


def test_coe_keys_with_underscored_platform_names():
    m = {
        "coe.sn40l.bs8.tok20.latency_s": 1.0, "coe.sn40l.bs8.tok20.switch_s": 0.1,
        "coe.dgx_h100.bs8.tok20.experts150.latency_s": 3.0, "coe.dgx_h100.bs8.tok20.experts150.oom": 0,
        "coe.dgx_h100.bs8.tok20.experts300.oom": 1,
        "coe.speedup.sn40l_vs_dgx_h100.bs8.tok20.overall": 3.7,
        "coe.speedup.sn40l_vs_dgx_h100.switch": 15.5,
        "coe.capacity.my_rdu.max_experts": 850, "coe.footprint.dgx_h100.nodes_for150": 4,
        "coe.unknown.shape": 1, "model.sn40l.latency_s": 2.0,
    }
    v = coe_view(m, ["dgx_h100", "sn40l"])
    s = Scenario(8, 20)
    assert v.platforms == ["dgx_h100", "sn40l", "my_rdu"]
    assert v.scenarios[("sn40l", s)] == {"latency_s": 1.0, "switch_s": 0.1}
    assert v.sweep[("dgx_h100", s)] == {150: {"latency_s": 3.0, "oom": 0}, 300: {"oom": 1}}
    assert v.speedups[("sn40l", "dgx_h100", s)] == {"overall": 3.7}
    assert v.switch_speedups == {("sn40l", "dgx_h100"): 15.5}
    assert v.capacity == {"my_rdu": {"max_experts": 850}}
    assert v.footprint == {"dgx_h100": {150: 4}}
    assert not v.empty and coe_view({}, []).empty


def test_fusion_and_model_keys():
    f = fusion_view({"fusion.mistral_7b.fused_ho.time_s": 0.1, "fusion.mistral_7b.speedup.fused_ho_vs_unfused": 9.0,
                     "fusion.mistral_7b.odd.time_s": 1, "fusion.x": 1})
    assert f.benchmarks == ["mistral_7b"]
    assert f.modes == {("mistral_7b", "fused_ho"): {"time_s": 0.1}}
    assert f.speedups == {"mistral_7b": {"fused_ho_vs_unfused": 9.0}}
    m = model_view({"model.dgx_a100.latency_s": 1.0, "model.dgx_a100.breakdown.launch_s": 0.2,
                    "model.dgx_a100.breakdown.weird_s": 0.1, "model.dgx_a100.breakdown.compute_s": None}, [])
    assert m.platforms == ["dgx_a100"]
    assert m.components() == ["compute", "launch", "weird"]
    assert m.breakdown["dgx_a100"]["compute"] is None


def test_platform_order_follows_the_workload():
    resolved = {"platforms": {"dgx_h100": {}, "sn40l": {}}}
    assert platform_order(resolved, {"sn40l": {}, "extra": {}}) == ["dgx_h100", "sn40l", "extra"]
    assert platform_order({}, {}) == []


def test_kernel_points_are_read_tolerantly():
    rows = [
        {"kernel": "a", "flops": 1e12, "bytes": 1e10, "time_s": 1e-3, "mode": "fused_ho", "platform": "sn40l"},
        {"name": "b", "flops": 2e12, "bytes_read": 1e9, "bytes_written": 1e9, "duration_s": 2e-3},
        {"op": "c", "flops": 1e12, "oi_flops_per_byte": 50.0, "time_s": 1e-3, "devices": 8},
        {"kernel": "no_time", "flops": 1e12, "bytes": 1e9},
        {"kernel": "zero", "flops": 0.0, "bytes": 1e9, "time_s": 1.0},
        {"batch": 3, "latency_s_total": 1.0},          # not a kernel row
    ]
    pts, no_flops, skipped = kernel_points(rows)
    assert [p.kernel for p in pts] == ["a", "b", "c"] and no_flops == 1 and skipped == 1
    assert pts[0].oi == pytest.approx(100) and pts[0].achieved == pytest.approx(1e15)
    assert pts[1].oi == pytest.approx(1000) and pts[1].platform is None
    assert pts[2].achieved == pytest.approx(1e15 / 8)
    util = utilisation_rows([{"benchmark": "b", "mode": "m", "kernel": "k", "time_s": 1.0, "pcu_util": 0.5}])
    assert util == [("b/m/k", 1.0, 0.5, None, None, ("", "b", "m"))]
    assert kernel_points([{"kernel": 3, "name": "L0.mlp", "phase": "decode", "flops": 1.0, "bytes": 1.0,
                           "time_s": 1.0}])[0][0].kernel == "L0.mlp"


def test_roofs_come_from_the_arch_specs():
    rdu = roofs(plain(load_arch("arch/sn40l.yaml")))
    assert rdu["peak_flops_per_s"] == pytest.approx(638.976e12)
    assert rdu["HBM"] == pytest.approx(2e12) and rdu["DDR"] == pytest.approx(2e11)
    gpu = roofs(plain(load_arch("arch/dgx_h100.yaml")))
    assert gpu["peak_flops_per_s"] == pytest.approx(989e12) and gpu["HBM"] == pytest.approx(3.35e12)
    assert roofs({"kind": "gpu"}) == {} and roofs({}) == {}


def test_platform_colours_are_fixed_distinct_and_stable():
    known = [platform_color(p) for p in ("sn40l", "dgx_h100", "dgx_a100")]
    assert len(set(known)) == 3
    assert platform_color("sn40l_2x_sram") == platform_color("sn40l_2x_sram")
    assert platform_color("sn40l_2x_sram").startswith("#")


@given(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=5)))
def test_fmt_never_raises(value):
    assert isinstance(fmt(value), str)


def test_fmt_cells():
    assert fmt(None) == "-" and fmt(float("inf")) == "-" and fmt(3.0) == "3" and fmt(0.123456) == "0.1235"
    assert fmt(True) == "yes" and fmt(1234567) == "1234567"


def test_fusion_views_split_platform_qualified_keys():
    from rdusim.report.keys import fusion_views
    m = {"fusion.b1.fused_ho.time_s": 1.0, "fusion.b1.sn40l.fused_ho.time_s": 1.0,
         "fusion.b1.dgx_h100.fused.time_s": 2.0, "fusion.b1.dgx_h100.speedup.fused_vs_unfused": 3.0,
         "fusion.b1.sn40l.speedup.fused_ho_vs_unfused": 9.0}
    plain_view, *per = fusion_views(m, ["sn40l", "dgx_h100"])
    assert plain_view.platform is None and plain_view.modes == {("b1", "fused_ho"): {"time_s": 1.0}}
    assert [v.platform for v in per] == ["sn40l", "dgx_h100"]
    assert per[1].modes == {("b1", "fused"): {"time_s": 2.0}} and per[1].mode_list() == ["fused"]
    assert per[1].speedups == {"b1": {"fused_vs_unfused": 3.0}}
    # benchmark names have no dots (the workload checks them), so the key's length says
    # whether a platform is named: without the platform list it is still read as one
    plain_view, qualified = fusion_views({"fusion.a.b.fused_ho.time_s": 1.0})
    assert plain_view.empty and qualified.platform == "b" and qualified.benchmarks == ["a"]
