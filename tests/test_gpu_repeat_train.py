"""repeated_step_kernels: a training step's GPU kernels (forward up, backward and optimizer
down) from the model cut to three layers are exactly the whole model's, for every shipped
model, fused and unfused, and so is its memory need; shapes it cannot repeat are declined."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdusim.config.arch import load_arch
from rdusim.config.model import load_model
from rdusim.config.policy import FusionPolicy, LaunchMode
from rdusim.engine.gpu.fusion_rules import partition
from rdusim.engine.gpu.repeat import TEMPLATE_LAYERS, repeated_step_kernels
from rdusim.engine.gpu.step import simulate_kernels, simulate_step
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase
from rdusim.memory import graph_memory, repeated_graph_memory

ARCH = load_arch("arch/dgx_h100.yaml")
MODELS = sorted(p.stem for p in Path("models").glob("*.yaml"))


@pytest.mark.parametrize("model", MODELS)
def test_training_kernels_from_three_layers_are_the_whole_models(model):
    cfg = load_model(model)
    tp = 8 if cfg.num_attention_heads % 8 == 0 and cfg.intermediate_size % 8 == 0 else 1
    layers = min(5, cfg.num_hidden_layers)
    whole = build_model_graph(cfg, Phase.TRAIN, 1, 640, tp=tp, layers=layers)
    head = build_model_graph(cfg, Phase.TRAIN, 1, 640, tp=tp, layers=TEMPLATE_LAYERS)
    for policy in FusionPolicy:
        assert repeated_step_kernels(head, layers, policy, ARCH) == partition(whole, policy, ARCH)
        assert repeated_graph_memory(ARCH, head, layers, 1, policy) == graph_memory(ARCH, whole, policy)


def test_a_full_depth_sparse_training_step_is_the_same():
    cfg = load_model("opt-13b")
    kw = dict(tp=8, weight_density=0.125)
    whole = build_model_graph(cfg, Phase.TRAIN, 1, 2048, **kw)
    head = build_model_graph(cfg, Phase.TRAIN, 1, 2048, layers=TEMPLATE_LAYERS, **kw)
    kernels = repeated_step_kernels(head, cfg.num_hidden_layers, FusionPolicy.FUSED, ARCH)
    launch = LaunchMode.CUDA_GRAPH
    assert simulate_kernels(ARCH, kernels, launch=launch, tp=8) == \
        simulate_step(ARCH, whole, fusion=FusionPolicy.FUSED, launch=launch, tp=8)


def test_declines_what_it_cannot_repeat():
    cfg = load_model("llama2-7b")
    for layers in (2, 4):                 # not the three-layer template
        g = build_model_graph(cfg, Phase.TRAIN, 1, 256, tp=8, layers=layers)
        assert repeated_step_kernels(g, 32, FusionPolicy.FUSED, ARCH) is None
    g = build_model_graph(cfg, Phase.TRAIN, 1, 256, tp=8, layers=TEMPLATE_LAYERS)
    assert repeated_step_kernels(g, 2, FusionPolicy.FUSED, ARCH) is None
