"""The fusion study's roofline (``fusion.<bench>.<P>.<mode>.ideal_s``, ``.realistic_over_ideal``):
a whole step's FLOPs at peak and its compulsory off-chip bytes at peak HBM bandwidth,
counted from three layers with the middle one repeated exactly as from the whole graph, and
never above the time the engine gives (a run cannot beat its roofline)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from rdusim.config.arch import load_arch
from rdusim.config.model import load_model
from rdusim.config.workload import load_workload
from rdusim.engine.family import BenchGraphs
from rdusim.engine.roofline import bench_roofline
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase
from rdusim.graph.tensor import DType
from rdusim.studies import run_study

SMALL = "tests/data/fusion_small.yaml"


def _graphs(model: str, phase: Phase, batch: int, seq: int, layers: int, tp: int = 1) -> BenchGraphs:
    cfg = load_model(model)
    return BenchGraphs(phase, tp, layers, lambda n: build_model_graph(cfg, phase, batch, seq, tp=tp,
                                                                      layers=n or layers), 16, None)


@settings(max_examples=12, deadline=None)
@given(phase=st.sampled_from([Phase.DECODE, Phase.PREFILL, Phase.TRAIN]), layers=st.integers(4, 7),
       batch=st.integers(1, 4), seq=st.sampled_from([64, 256, 1000]), tp=st.sampled_from([1, 2]))
def test_repeated_layers_count_what_the_whole_graph_counts(phase, layers, batch, seq, tp):
    cut = bench_roofline(_graphs("llama2-7b", phase, batch, seq, layers, tp))
    g = build_model_graph(load_model("llama2-7b"), phase, batch, seq, tp=tp, layers=layers)
    assert cut.flops == pytest.approx(g.totals.flops, rel=1e-12)
    assert cut.hbm_bytes == pytest.approx(g.boundary_bytes, rel=1e-12)


def test_hand_computed_roofline_of_a_decode_step():
    """Batch-1 decode of 4 layers on one H100: weights and KV bytes over 3.35 TB/s bound it."""
    arch = load_arch("arch/dgx_h100.yaml")
    r = bench_roofline(_graphs("llama2-7b", Phase.DECODE, 1, 512, 4))
    assert r.dtype == DType.BF16
    hbm = arch.device_hbm.bandwidth_bytes_per_s
    assert r.time_s(arch) == pytest.approx(max(r.flops / arch.native_rate(DType.BF16), r.hbm_bytes / hbm))
    assert r.hbm_bytes / hbm > r.flops / arch.native_rate(DType.BF16)       # memory-bound
    cfg = load_model("llama2-7b")
    layer_weights = 4 * cfg.hidden_size ** 2 + 3 * cfg.hidden_size * cfg.intermediate_size
    assert r.hbm_bytes > 4 * layer_weights * 2         # at least the four layers' bf16 weights


def test_no_run_beats_its_roofline(tmp_path):
    wl = yaml.safe_load(Path(SMALL).read_text())
    wl["platforms"]["dgx_h100"] = {"arch": "arch/dgx_h100.yaml", "tp": 8}
    path = tmp_path / "both.yaml"
    path.write_text(yaml.safe_dump(wl))
    m = run_study(load_workload(path)).metrics
    ratios = {k: v for k, v in m.items() if k.endswith(".realistic_over_ideal")}
    assert len(ratios) == 3 * (3 + 3 + 2)        # 3 benchmarks x (sn40l 3 modes, un-prefixed 3, h100 2)
    assert all(v >= 1.0 for v in ratios.values()), ratios
    for k, v in ratios.items():
        base = k[: -len("realistic_over_ideal")]
        assert v == pytest.approx(m[base + "time_s"] / m[base + "ideal_s"])


def test_fusion_steps_draw_between_static_power_and_tdp(tmp_path):
    """fusion.*.energy_j: static power over the step plus its work, on its tp devices, so
    between static power x time and TDP x time per device."""
    from rdusim.energy import EnergyModel

    wl = yaml.safe_load(Path(SMALL).read_text())
    wl["benchmarks"] = wl["benchmarks"][:1]
    wl["platforms"]["dgx_h100"] = {"arch": "arch/dgx_h100.yaml", "tp": 8}
    path = tmp_path / "both.yaml"
    path.write_text(yaml.safe_dump(wl))
    loaded = load_workload(path)
    m = run_study(loaded).metrics
    for p, modes in (("sn40l", ("unfused", "fused_so", "fused_ho")), ("dgx_h100", ("unfused", "fused"))):
        power = EnergyModel.of(loaded.archs[p])
        for mode in modes:
            e, t = m[f"fusion.llama_decode.{p}.{mode}.energy_j"], m[f"fusion.llama_decode.{p}.{mode}.time_s"]
            assert 8 * power.static_w * t < e <= 8 * power.tdp_w * t * (1 + 1e-9), (p, mode)
