"""A model's footprint from its first layers with the middle one repeated equals the whole
graph's (the fusion study's GPU path builds no 30-80 layer graph)."""

from __future__ import annotations

import pytest

from rdusim.config.arch import load_arch
from rdusim.config.model import load_model
from rdusim.config.policy import FusionPolicy
from rdusim.engine.gpu.repeat import TEMPLATE_LAYERS
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase
from rdusim.memory import graph_memory, repeated_graph_memory


@pytest.mark.parametrize("policy", list(FusionPolicy))
@pytest.mark.parametrize("model,phase,batch,seq,tp", [
    ("llama2-7b", Phase.DECODE, 1, 512, 1),
    ("llama2-7b", Phase.PREFILL, 4, 2048, 8),
    ("llama2-70b", Phase.DECODE, 8, 4096, 8),
])
def test_repeated_footprint_equals_the_whole_graphs(model, phase, batch, seq, tp, policy):
    cfg = load_model(model)
    arch = load_arch("arch/dgx_h100.yaml")
    whole = graph_memory(arch, build_model_graph(cfg, phase, batch, seq, tp=tp), policy)
    head = build_model_graph(cfg, phase, batch, seq, tp=tp, layers=TEMPLATE_LAYERS)
    fast = repeated_graph_memory(arch, head, cfg.num_hidden_layers, 1, policy)
    assert fast == whole


def test_a_head_that_is_the_whole_model_is_not_repeated():
    cfg = load_model("llama2-7b")
    head = build_model_graph(cfg, Phase.DECODE, 1, 128, layers=TEMPLATE_LAYERS)
    assert repeated_graph_memory(load_arch("arch/dgx_h100.yaml"), head, TEMPLATE_LAYERS, 1, FusionPolicy.FUSED) is None
