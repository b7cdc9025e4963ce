"""compile_repeated_runs: a training step's plan from the model cut to three layers is exactly
the whole model's plan (every shipped model, fused and unfused, placement order included),
and it declines whenever that could differ."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdusim.compiler import compile_plan
from rdusim.compiler.repeat_runs import compile_repeated_runs
from rdusim.graph.layer_runs import expand, runs
from rdusim.config.arch import load_arch
from rdusim.config.model import load_model
from rdusim.config.policy import FusionPolicy
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase

ARCH = load_arch("arch/sn40l.yaml")
MODELS = sorted(p.stem for p in Path("models").glob("*.yaml"))


def tp_for(cfg) -> int:
    return 8 if cfg.num_attention_heads % 8 == 0 and cfg.intermediate_size % 8 == 0 else 1


def same_plan(a, b) -> bool:
    return a == b and list(a.placement.items()) == list(b.placement.items())


def test_runs_and_their_expansion():
    assert runs([-1, -1, 0, 0, 1, 2, 2, -1, 2, 1, 0]) == [(-1, 2), (0, 2), (1, 1), (2, 2), (-1, 1), (2, 1),
                                                         (1, 1), (0, 1)]
    #            embed  forward up          head  backward down       optimizer down
    template = [-1, 0, 1, 2, -1, 2, 1, 0, 2, 1, 0]   # backward then optimizer with no op between (LoRA)
    assert expand(template, 5) == [[-1], [0], [1, 2, 3], [4], [-1], [4], [3, 2, 1], [0], [4], [3, 2, 1], [0]]
    assert expand([-1, 0, 1, 2, -1, 2, 1, 0, 2, 1], 5) is None     # a visit cut short
    assert expand([-1, 0, 1, 2, -1, 2, 1, 0, 0, 1, 2, 1], 5) is None
    template = [-1, 0, 1, 2, -1, 2, 1, 0, -1]
    assert expand(template, 5) == [[-1], [0], [1, 2, 3], [4], [-1], [4], [3, 2, 1], [0], [-1]]
    assert expand(template, 3) == [[-1], [0], [1], [2], [-1], [2], [1], [0], [-1]]
    assert expand([-1, 0, 2, 1, -1], 5) is None
    assert expand([0, 1], 5) is None            # a stretch missing the last layer


@pytest.mark.parametrize("model", MODELS)
def test_training_plan_from_three_layers_is_the_whole_models_plan(model):
    cfg = load_model(model)
    tp = tp_for(cfg)
    layers = min(5, cfg.num_hidden_layers)
    whole = build_model_graph(cfg, Phase.TRAIN, 1, 640, tp=tp, layers=layers)
    three = build_model_graph(cfg, Phase.TRAIN, 1, 640, tp=tp, layers=3)
    for policy in FusionPolicy:
        plan = compile_repeated_runs(three, layers, ARCH, policy, tiles=16)
        assert plan is not None
        assert same_plan(plan, compile_plan(whole, ARCH, policy, tiles=16))


def test_full_depth_sparse_training_as_the_fusion_suite_runs_it():
    cfg = load_model("opt-13b")
    kw = dict(tp=8, weight_density=0.125)
    whole = build_model_graph(cfg, Phase.TRAIN, 1, 2048, **kw)
    three = build_model_graph(cfg, Phase.TRAIN, 1, 2048, layers=3, **kw)
    for policy in FusionPolicy:
        plan = compile_repeated_runs(three, cfg.num_hidden_layers, ARCH, policy, tiles=64)
        assert same_plan(plan, compile_plan(whole, ARCH, policy, tiles=64))
        assert len(plan.kernels) >= 3 * cfg.num_hidden_layers     # forward, backward, optimizer


def test_declines_when_the_model_would_spill_to_ddr():
    cfg = load_model("llama2-7b")
    three = build_model_graph(cfg, Phase.TRAIN, 1, 256, tp=8, layers=3)
    small = load_arch("arch/sn40l.yaml", [("socket.hbm.capacity_bytes", {"value": 6e9, "source": "what-if"}),
                                              ("socket.hbm.reserved_bytes", {"value": 0, "source": "what-if"})])
    assert set(compile_plan(three, small, FusionPolicy.FUSED).placement.values()) == {"hbm"}
    assert compile_repeated_runs(three, cfg.num_hidden_layers, small, FusionPolicy.FUSED, tiles=64) is None
    assert compile_repeated_runs(three, 3, small, FusionPolicy.FUSED, tiles=64) is not None


def test_declines_graphs_that_are_not_three_layers_of_a_model():
    cfg = load_model("llama2-7b")
    for layers in (2, 4):
        g = build_model_graph(cfg, Phase.TRAIN, 1, 256, tp=8, layers=layers)
        assert compile_repeated_runs(g, 32, ARCH, FusionPolicy.FUSED, tiles=64) is None
    g = build_model_graph(cfg, Phase.TRAIN, 1, 256, tp=8, layers=3)
    assert compile_repeated_runs(g, 2, ARCH, FusionPolicy.FUSED, tiles=64) is None
