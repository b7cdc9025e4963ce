"""repeated_kernels: a model's GPU kernels from its first three layers are exactly the whole
model's (every shipped model, prefill and decode, fused and unfused)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdusim.config.arch import load_arch
from rdusim.config.model import load_model
from rdusim.config.policy import FusionPolicy, LaunchMode
from rdusim.engine.gpu.fusion_rules import partition
from rdusim.config.deployment import Deployment
from rdusim.engine.gpu.model_step import model_step
from rdusim.cache import RunCache
from rdusim.engine.gpu.repeat import TEMPLATE_LAYERS, repeated_kernels
from rdusim.engine.gpu.step import simulate_step
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase

ARCH = load_arch("arch/dgx_h100.yaml")
MODELS = sorted(p.stem for p in Path("models").glob("*.yaml"))


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("phase,batch,seq", [(Phase.PREFILL, 1, 640), (Phase.DECODE, 3, 700)])
def test_repeated_kernels_are_the_whole_models(model, phase, batch, seq):
    cfg = load_model(model)
    tp = 8 if cfg.num_attention_heads % 8 == 0 and cfg.intermediate_size % 8 == 0 else 1
    layers = min(6, cfg.num_hidden_layers)
    whole = build_model_graph(cfg, phase, batch, seq, tp=tp, layers=layers)
    head = build_model_graph(cfg, phase, batch, seq, tp=tp, layers=TEMPLATE_LAYERS)
    for policy in FusionPolicy:
        assert repeated_kernels(head, layers, policy, ARCH) == partition(whole, policy, ARCH)


def test_a_full_depth_step_is_the_same():
    cfg = load_model("llama2-7b")
    whole = build_model_graph(cfg, Phase.DECODE, 2, 300, tp=8)
    for policy in FusionPolicy:
        dep = Deployment.of(ARCH, cfg, 8, policy, LaunchMode.CUDA_GRAPH)
        assert model_step(dep, Phase.DECODE, 2, 300, 1e-3, RunCache().get) == \
            simulate_step(ARCH, whole, fusion=policy, launch=LaunchMode.CUDA_GRAPH, tp=8, host_s=1e-3)


def test_declines_other_graphs():
    cfg = load_model("llama2-7b")
    for layers in (2, 4):
        g = build_model_graph(cfg, Phase.DECODE, 1, 300, tp=8, layers=layers)
        assert repeated_kernels(g, 32, FusionPolicy.FUSED, ARCH) is None
    g = build_model_graph(cfg, Phase.DECODE, 1, 300, tp=8, layers=3)
    assert repeated_kernels(g, 2, FusionPolicy.FUSED, ARCH) is None
    train = build_model_graph(cfg, Phase.TRAIN, 1, 256, tp=8, layers=3)
    assert repeated_kernels(train, 32, FusionPolicy.FUSED, ARCH) is None
