"""compile_repeated: a model's plan from its first two layers is exactly the whole model's plan
(every shipped model, prefill and decode, fused and unfused), and it declines when tensors
would spill out of HBM."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdusim.compiler import compile_plan
from rdusim.compiler.repeat import compile_repeated, repeated_param_bytes
from rdusim.config.arch import load_arch
from rdusim.config.model import load_model
from rdusim.config.policy import FusionPolicy
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase

ARCH = load_arch("arch/sn40l.yaml")
MODELS = sorted(p.stem for p in Path("models").glob("*.yaml"))


def tp_for(cfg) -> int:
    return 8 if cfg.num_attention_heads % 8 == 0 and cfg.intermediate_size % 8 == 0 else 1


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("phase,batch,seq", [(Phase.PREFILL, 1, 640), (Phase.DECODE, 3, 700)])
def test_repeated_layer_plan_is_the_whole_models_plan(model, phase, batch, seq):
    cfg = load_model(model)
    tp = tp_for(cfg)
    layers = min(4, cfg.num_hidden_layers)
    whole = build_model_graph(cfg, phase, batch, seq, tp=tp, layers=layers)
    one = build_model_graph(cfg, phase, batch, seq, tp=tp, layers=2)
    for policy in FusionPolicy:
        plan = compile_repeated(one, layers, ARCH, policy, tiles=16)
        assert plan is not None
        full = compile_plan(whole, ARCH, policy, tiles=16)
        assert plan == full
        assert list(plan.placement.items()) == list(full.placement.items())
    assert repeated_param_bytes(one, layers) == whole.param_bytes


def test_full_depth_llama():
    cfg = load_model("llama2-7b")
    whole = build_model_graph(cfg, Phase.DECODE, 2, 300, tp=8)
    two = build_model_graph(cfg, Phase.DECODE, 2, 300, tp=8, layers=2)
    plan = compile_repeated(two, cfg.num_hidden_layers, ARCH, FusionPolicy.FUSED, tiles=64)
    full = compile_plan(whole, ARCH, FusionPolicy.FUSED)
    assert plan == full
    assert list(plan.placement.items()) == list(full.placement.items())
    assert repeated_param_bytes(two, cfg.num_hidden_layers) == whole.param_bytes


def test_declines_when_the_model_would_spill_to_ddr():
    cfg = load_model("llama2-7b")
    two = build_model_graph(cfg, Phase.DECODE, 1, 300, tp=8, layers=2)
    # room for the two-layer graph's tensors but not for 32 layers'
    small = load_arch("arch/sn40l.yaml", [("socket.hbm.capacity_bytes", {"value": 4e8, "source": "what-if"}),
                                              ("socket.hbm.reserved_bytes", {"value": 0, "source": "what-if"})])
    assert set(compile_plan(two, small, FusionPolicy.FUSED).placement.values()) == {"hbm"}
    assert compile_repeated(two, cfg.num_hidden_layers, small, FusionPolicy.FUSED, tiles=64) is None
    assert compile_repeated(two, 2, small, FusionPolicy.FUSED, tiles=64) is not None


def test_declines_graphs_that_are_not_two_layers_of_a_model():
    cfg = load_model("llama2-7b")
    for layers in (1, 3):
        g = build_model_graph(cfg, Phase.DECODE, 1, 300, tp=8, layers=layers)
        assert compile_repeated(g, 32, ARCH, FusionPolicy.FUSED, tiles=64) is None
    g = build_model_graph(cfg, Phase.DECODE, 1, 300, tp=8, layers=2)
    assert compile_repeated(g, 1, ARCH, FusionPolicy.FUSED, tiles=64) is None
    train = build_model_graph(cfg, Phase.TRAIN, 1, 256, tp=8, layers=2)   # backward layers come back
    assert compile_repeated(train, 32, ARCH, FusionPolicy.FUSED, tiles=64) is None
