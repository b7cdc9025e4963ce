"""Ops and small graphs: hand-computed FLOPs and bytes, and properties (hypothesis)."""

import math

import pytest
from hypothesis import given, settings, strategies as st

from rdusim.config.model import Activation, ModelConfig, NormKind, PositionKind
from rdusim.errors import InputError
from rdusim.graph import ops as O
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.opgraph import OpGraph, boundary_bytes, subgraph_totals
from rdusim.graph.ops import OpKind, ShapeError
from rdusim.graph.phase import Phase
from rdusim.graph.tensor import DType, Tensor, TensorRole

W = TensorRole.WEIGHT


def test_gemm_and_linear_by_hand():
    a = Tensor("a", (3, 4, 5))
    b = Tensor("b", (3, 5, 6))
    op = O.gemm("g", a, b, "y")
    assert op.flops == 2 * 3 * 4 * 6 * 5
    assert op.bytes_read == (60 + 90) * 2 and op.bytes_written == 3 * 4 * 6 * 2
    bt = O.gemm("gt", a, Tensor("bt", (3, 6, 5)), "yt", transpose_b=True)
    assert bt.outputs[0].shape == (3, 4, 6) and bt.flops == op.flops
    x, w = Tensor("x", (2, 7, 16)), Tensor("w", (16, 32), role=W)
    lin = O.linear("l", x, w, "y")
    assert lin.flops == 2 * 14 * 16 * 32 and lin.weight_bytes == 16 * 32 * 2
    assert dict(lin.attrs) == {"m": 14, "n": 32, "k": 16, "batch": 1}
    tied = O.linear("h", x, Tensor("e", (32, 16), role=W), "z", transpose_w=True)
    assert tied.outputs[0].shape == (2, 7, 32) and tied.flops == lin.flops


def test_sparse_weight_scales_flops_and_bytes():
    w = Tensor("w", (16, 32), DType.BF16, W, density=0.125)
    assert w.nbytes == 16 * 32 * 0.125 * (2 + 2)          # values + 2-byte index
    lin = O.linear("l", Tensor("x", (4, 16)), w, "y")
    assert lin.flops == 2 * 4 * 16 * 32 * 0.125


def test_norm_softmax_rotary_glu_by_hand():
    x = Tensor("x", (2, 3, 8))
    g, b = Tensor("g", (8,), role=W), Tensor("b", (8,), role=W)
    rms = O.norm("n", x, [g], "y")
    assert rms.flops == 4 * 48 and rms.bytes == (48 + 8 + 48) * 2
    ln = O.norm("ln", x, [g, b], "z", rms=False)
    assert ln.flops == 7 * 48 and ln.bytes_read == (48 + 16) * 2
    assert O.softmax("s", x, "s_out").flops == 5 * 48
    assert O.rotary("r", x, "r_out").flops == 3 * 48
    glu = O.glu("u", x, "u_out", act_flops=4)
    assert glu.outputs[0].shape == (2, 3, 4) and glu.flops == 5 * 24


def test_views_move_nothing_and_copies_move_everything():
    x = Tensor("x", (2, 6, 4))
    assert O.reshape("r", x, (12, 4), "r_out").bytes == 0
    s = O.slice_("s", x, 1, 2, 5, "s_out")
    assert s.outputs[0].shape == (2, 3, 4) and s.bytes == 0 and s.kind.is_layout
    t = O.transpose("t", x, (0, 2, 1), "t_out")
    assert t.outputs[0].shape == (2, 4, 6) and t.bytes == 2 * 48 * 2 and t.flops == 0
    c = O.concat("c", [x, Tensor("x2", (2, 2, 4))], 1, "c_out")
    assert c.outputs[0].shape == (2, 8, 4) and c.bytes == (48 + 16 + 64) * 2


def test_embedding_reads_rows_and_allreduce_counts_adds():
    ids = Tensor("ids", (2, 3), DType.FP32, TensorRole.INPUT)
    e = O.embedding("e", ids, Tensor("tab", (1000, 8), role=W), "y")
    assert e.bytes_read == 6 * 4 + 6 * 8 * 2                   # ids + 6 rows, not the table
    ar = O.allreduce("a", Tensor("x", (4, 8)), 8, "y")
    assert ar.flops == 32 * 7 / 8 and ar.attr("message_bytes") == 64


@pytest.mark.parametrize("make", [
    lambda: O.gemm("g", Tensor("a", (4, 5)), Tensor("b", (6, 7)), "y"),
    lambda: O.linear("l", Tensor("x", (4, 5)), Tensor("w", (6, 7), role=W), "y"),
    lambda: O.norm("n", Tensor("x", (4, 5)), [Tensor("g", (4,), role=W)], "y"),
    lambda: O.reshape("r", Tensor("x", (4, 5)), (3, 7), "y"),
    lambda: O.transpose("t", Tensor("x", (4, 5)), (0, 0), "y"),
    lambda: O.slice_("s", Tensor("x", (4, 5)), 1, 3, 9, "y"),
    lambda: O.concat("c", [Tensor("x", (4, 5)), Tensor("z", (3, 4))], 0, "y"),
    lambda: O.elementwise("e", [Tensor("x", (4, 5)), Tensor("z", (3,))], "y"),
    lambda: O.allreduce("a", Tensor("x", (4, 5)), 0, "y"),
])
def test_shape_mismatches_raise(make):
    with pytest.raises(ShapeError):
        make()


def tiny(**kw) -> ModelConfig:
    base = dict(name="tiny", family="llama", hidden_size=64, intermediate_size=128, num_attention_heads=4,
                num_key_value_heads=2, num_hidden_layers=2, vocab_size=100, max_position_embeddings=512)
    base.update(kw)
    return ModelConfig(**base)


def test_tiny_decode_attention_by_hand():
    g = build_model_graph(tiny(), Phase.DECODE, 2, 10)
    d, ctx = 16, 11                             # head dim; 10 cached tokens + the new one
    qkv = g.op("L0.attn.qkv")
    assert qkv.flops == 2 * 2 * 64 * (4 + 2 * 2) * d
    assert qkv.bytes_read == (2 * 64 + 64 * 128) * 2 and qkv.bytes_written == 2 * 128 * 2
    score = g.op("L0.attn.score")             # 2 query heads share each of 2 KV heads
    assert score.inputs[0].shape == (2, 2, 2, d) and score.inputs[1].shape == (2, 2, ctx, d)
    assert score.flops == 2 * 2 * 2 * 2 * ctx * d
    assert score.bytes_read == (2 * 2 * 2 * d + 2 * 2 * ctx * d) * 2
    assert g.op("L0.attn.softmax").flops == 5 * 2 * 2 * 2 * ctx
    assert g.op("L0.attn.context").flops == score.flops
    assert g.op("L0.kv.append").bytes_written == 2 * (2 * 2 * 1 * d) * 2
    assert g.op("L0.input_norm").flops == 4 * 2 * 64
    assert g.op("L0.mlp.gate_up").flops == 2 * 2 * 64 * 256
    assert g.op("L0.mlp.act_mul").flops == (4 + 1) * 2 * 128
    assert g.op("lm_head").flops == 2 * 2 * 64 * 100
    assert tiny().kv_cache_bytes_per_token == 2 * 2 * 2 * d * 2


def test_boundary_bytes_of_a_fused_layer():
    g = build_model_graph(tiny(), Phase.DECODE, 1, 10, layers=1)
    layer = [o for o in g.ops if o.block == "L0"]
    weights = sum(t.nbytes for t in {t.name: t for o in layer for t in o.inputs if t.role == W}.values())
    kv = 2 * (1 * 2 * 11 * 16) * 2 + 2 * (1 * 2 * 1 * 16) * 2        # cache read + new entries
    x = 64 * 2
    # the layer output is read by final_norm outside the layer
    assert boundary_bytes(layer, ["L0.residual_mlp.out"]) == weights + kv + x + x
    assert boundary_bytes(layer, ["L0.residual_mlp.out"]) < subgraph_totals(layer).bytes


def test_opgraph_rejects_bad_wiring():
    x = Tensor("x", (2, 4), role=TensorRole.INPUT)
    a = O.elementwise("a", [x], "y")
    with pytest.raises(InputError, match="unique op names"):
        OpGraph("g", [a, a])
    b = O.elementwise("b", [Tensor("nope", (2, 4))], "z")
    with pytest.raises(InputError, match="no producer"):
        OpGraph("g", [b])
    c = O.elementwise("c", [Tensor("y", (4, 2))], "z")
    with pytest.raises(InputError, match="as produced by a"):
        OpGraph("g", [a, c])
    p = O.elementwise("p", [Tensor("q_out", (2, 4))], "p_out")
    q = O.elementwise("q", [Tensor("p_out", (2, 4))], "q_out")
    with pytest.raises(InputError, match="cycle"):
        OpGraph("g", [p, q])


def test_bad_requests_raise_input_errors():
    cfg = tiny()
    for kw in ({"tp": 3}, {"tp": 8}, {"weight_density": 0.0}):
        with pytest.raises(InputError):
            build_model_graph(cfg, Phase.DECODE, 1, 8, **kw)
    with pytest.raises(InputError):
        build_model_graph(cfg, Phase.DECODE, 0, 8)
    with pytest.raises(ValueError):
        tiny(hidden_size=66)


# ---- properties ----

configs = st.builds(
    lambda d, heads, group, ffn, act, norm, pos, gated, bias, par: tiny(
        hidden_size=d * heads, num_attention_heads=heads, num_key_value_heads=heads // group,
        intermediate_size=ffn * 8, hidden_act=act, norm=norm, position_embedding=pos, mlp_gated=gated,
        attention_bias=bias, mlp_bias=bias, parallel_attn=par, parallel_attn_norms=2 if par else 1),
    st.sampled_from([8, 16]), st.sampled_from([2, 4, 8]), st.sampled_from([1, 2]),
    st.integers(1, 8), st.sampled_from(list(Activation)), st.sampled_from(list(NormKind)),
    st.sampled_from(list(PositionKind)), st.booleans(), st.booleans(), st.booleans())


@settings(max_examples=40, deadline=None)
@given(cfg=configs, phase=st.sampled_from([Phase.PREFILL, Phase.DECODE, Phase.TRAIN]),
       batch=st.integers(1, 4), seq=st.integers(1, 40), tp=st.sampled_from([1, 2]))
def test_totals_are_sums_and_nonnegative(cfg, phase, batch, seq, tp):
    g = build_model_graph(cfg, phase, batch, seq, tp=tp)
    assert all(o.flops >= 0 and o.bytes_read >= 0 and o.bytes_written >= 0 for o in g.ops)
    assert g.totals.flops == pytest.approx(math.fsum(o.flops for o in g.ops), rel=1e-12)
    assert g.totals.bytes == pytest.approx(math.fsum(o.bytes for o in g.ops), rel=1e-12)
    assert 0 < g.boundary_bytes <= g.totals.bytes or phase == Phase.TRAIN


@settings(max_examples=40, deadline=None)
@given(cfg=configs, phase=st.sampled_from([Phase.PREFILL, Phase.DECODE, Phase.TRAIN]),
       batch=st.integers(1, 3), seq=st.integers(1, 24))
def test_dense_models_are_linear_in_batch(cfg, phase, batch, seq):
    """For a dense model at fixed seq, every op's FLOPs are exactly proportional to the
    batch (projections, MLP, attention per sequence, norms, AdamW excepted: it depends on
    the parameters only); every op's bytes are affine in the batch (weights and optimizer
    state fixed, activations and KV cache proportional)."""
    g1, g2, g3 = (build_model_graph(cfg, phase, b, seq) for b in (batch, 2 * batch, 3 * batch))
    for o1, o2, o3 in zip(g1.ops, g2.ops, g3.ops):
        assert o1.name == o2.name == o3.name
        if o1.tag == "optim.adam":
            assert o1.flops == o2.flops
            continue
        assert o2.flops == pytest.approx(2 * o1.flops, rel=1e-12, abs=1e-9)
        assert o3.bytes - o2.bytes == pytest.approx(o2.bytes - o1.bytes, rel=1e-12, abs=1e-9)
        if o1.tag in ("attn.qkv", "attn.o", "mlp.gate_up", "mlp.up", "mlp.down") and o1.attr("pass") is None:
            w = o1.weight_bytes
            assert o2.bytes - w == pytest.approx(2 * (o1.bytes - w), rel=1e-12)


def test_building_is_deterministic_and_cached():
    from rdusim.cache import RunCache, using
    cfg = tiny(num_local_experts=4, num_experts_per_tok=2)
    with using(RunCache()):
        a = build_model_graph(cfg, Phase.TRAIN, 2, 8)
        assert build_model_graph(cfg, Phase.TRAIN, 2, 8) is a      # one run shares the graph
    with using(RunCache()):
        b = build_model_graph(cfg, Phase.TRAIN, 2, 8)              # another run builds its own
    assert b is not a and b.ops == a.ops and b.params == a.params
