"""The model library: every model loads, and its graph has the published parameter count."""

from pathlib import Path

import pytest

from rdusim.config.model import MODELS_DIR, load_model
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase

MODELS = sorted(p.stem for p in Path(MODELS_DIR).glob("*.yaml"))
EXPECTED = {"llama2-7b", "llama2-13b", "llama2-70b", "mistral-7b", "falcon-40b", "bloom-176b",
            "llava1.5-7b", "opt-13b", "llama3-8b", "llama3-70b", "mixtral-8x7b"}


def test_library_has_every_model_of_the_brief():
    assert EXPECTED <= set(MODELS)


def _published_count(cfg, graph) -> float:
    extra = cfg.vocab_size * cfg.hidden_size if cfg.published_params_counts_tied_head else 0
    return graph.params + extra


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("phase", [Phase.PREFILL, Phase.DECODE])
def test_graph_params_match_published_within_1_percent(name, phase):
    cfg = load_model(name)
    assert cfg.published_params and cfg.published_params_source
    g = build_model_graph(cfg, phase, 1, 1024)
    assert abs(_published_count(cfg, g) / cfg.published_params - 1) < 0.01


@pytest.mark.parametrize("name", MODELS)
def test_tp8_ranks_hold_about_an_eighth(name):
    cfg = load_model(name)
    full = build_model_graph(cfg, Phase.DECODE, 1, 256)
    rank = build_model_graph(cfg, Phase.DECODE, 1, 256, tp=8)
    # the LLaVA vision tower and projector are replicated on every rank
    vision = sum(t.numel for t in full.idle_weights if t.name.startswith(("vision.", "projector.")))
    assert vision == sum(t.numel for t in rank.idle_weights if t.name.startswith(("vision.", "projector.")))
    lm_full, lm_rank = full.params - vision, rank.params - vision
    # other replicated parts (norms, biases of row-parallel linears, position tables,
    # KV heads when fewer than ranks) keep a rank a little above 1/8
    assert lm_full / 8 <= lm_rank < lm_full / 8 * 1.06


def test_exact_counts_from_hand_arithmetic():
    # Llama-2-7B: 32 x (4*4096^2 + 3*4096*11008 + 2*4096) + 2*32000*4096 + 4096
    assert build_model_graph(load_model("llama2-7b"), Phase.DECODE, 1, 8).params == 6_738_415_616
    # BLOOM: biases everywhere, embedding LayerNorm, tied head (matches the model card exactly)
    assert build_model_graph(load_model("bloom-176b"), Phase.DECODE, 1, 8, layers=70).params == 176_247_271_424
    # OPT-13B: 2048 + 2 learned positions, tied head
    assert build_model_graph(load_model("opt-13b"), Phase.DECODE, 1, 8).params == 12_853_473_280
    # Falcon-40B: unique tensors with the head tied to the embedding
    assert build_model_graph(load_model("falcon-40b"), Phase.DECODE, 1, 8).params == 41_303_293_952


def test_mixtral_decode_streams_only_the_experts_hit():
    cfg = load_model("mixtral-8x7b")
    one = build_model_graph(cfg, Phase.DECODE, 1, 128, layers=1)
    four = build_model_graph(cfg, Phase.DECODE, 4, 128, layers=1)   # 4 tokens x top-2 = 8 >= 8 experts
    experts = lambda g: {o.name.split(".")[2] for o in g.ops if o.tag == "mlp.down"}
    assert experts(one) == {"e0", "e1"} and len(experts(four)) == 8
    assert one.params == four.params            # idle experts are still held
    w = lambda g: sum(o.weight_bytes for o in g.ops)
    assert w(one) < w(four)


def test_llava_prefill_runs_the_vision_tower_and_decode_does_not():
    cfg = load_model("llava1.5-7b")
    pre = build_model_graph(cfg, Phase.PREFILL, 1, 1024, layers=1)
    dec = build_model_graph(cfg, Phase.DECODE, 1, 1024, layers=1)
    assert any(o.name.startswith("vision.L23.") for o in pre.ops)
    assert not any(o.name.startswith("vision.") for o in dec.ops)
    merge = pre.op("embed.merge_image")
    assert merge.outputs[0].shape == (1, 1024, 4096)
    assert merge.inputs[0].shape == (1, 576, 4096)        # 24x24 patches, class token dropped
    assert pre.op("embed").inputs[0].shape == (1, 1024 - 576)


def test_sliding_window_caps_decode_attention():
    cfg = load_model("mistral-7b")
    g = build_model_graph(cfg, Phase.DECODE, 1, 16384, layers=1)
    assert g.op("L0.attn.score").inputs[1].shape == (1, 8, 4096, 128)
    g = build_model_graph(cfg, Phase.PREFILL, 1, 8192, layers=1)
    assert g.op("L0.attn.score").outputs[0].shape == (1, 8, 4 * 8192, 4096)


def test_kv_cache_bytes_follow_the_sliding_window():
    m, l = load_model("mistral-7b"), load_model("llama2-7b")
    assert m.kv_cache_bytes_per_token == 2 * 32 * 8 * 128 * 2
    assert m.kv_cache_bytes(16384) == 4096 * m.kv_cache_bytes_per_token
    assert l.kv_cache_bytes(16384) == 16384 * l.kv_cache_bytes_per_token
