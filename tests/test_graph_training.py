"""Training graphs: forward + backward + AdamW; GEMM FLOPs 3x the forward's."""

import pytest

from rdusim.config.model import load_model
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.ops import OpKind
from rdusim.graph.phase import Phase
from rdusim.graph.tensor import TensorRole
from rdusim.graph.training import ADAM_FLOPS_PER_PARAM, training_ops


def _gemm_flops(ops, backward=None):
    return sum(o.flops for o in ops if o.kind == OpKind.GEMM
               and (backward is None or (o.attr("pass") == "backward") == backward))


@pytest.mark.parametrize("name,tp", [("llama2-7b", 1), ("llama2-7b", 8), ("opt-13b", 2),
                                     ("falcon-40b", 8), ("mixtral-8x7b", 1), ("bloom-176b", 8)])
def test_train_gemm_flops_are_three_times_forward(name, tp):
    ops = training_ops(load_model(name), 2, 128, tp=tp, layers=2)
    fwd, bwd = _gemm_flops(ops, False), _gemm_flops(ops, True)
    assert bwd == pytest.approx(2 * fwd, rel=1e-12)


def test_llava_training_skips_the_gradient_of_pixels():
    # the patch-embedding GEMM reads pixels (no gradient): dW only; the last vision layer
    # feeds only the unused pooled output, so it has no backward: a little under 3x
    ops = training_ops(load_model("llava1.5-7b"), 1, 1024, layers=1)
    fwd, bwd = _gemm_flops(ops, False), _gemm_flops(ops, True)
    assert 1.9 * fwd < bwd < 2 * fwd
    assert not any(o.name.startswith("vision.L23.") and o.attr("pass") for o in ops)
    assert "vision.patch_embed.bwd_dw" in {o.name for o in ops}
    assert "vision.patch_embed.bwd_dx" not in {o.name for o in ops}


def test_every_weight_with_a_gradient_gets_one_adam_update():
    cfg = load_model("llama2-7b")
    g = build_model_graph(cfg, Phase.TRAIN, 1, 64, layers=2)
    updated = {t.name.removesuffix(".updated") for o in g.ops if o.tag == "optim.adam"
               for t in o.outputs if t.role == TensorRole.WEIGHT}
    assert updated == set(g.weights)
    adam = [o for o in g.ops if o.tag == "optim.adam"]
    assert sum(o.flops for o in adam) == ADAM_FLOPS_PER_PARAM * g.params
    # reads bf16 weight + bf16 grad + two fp32 moments, writes weight and moments back
    assert sum(o.bytes_read for o in adam) == g.params * (2 + 2 + 4 + 4)
    assert sum(o.bytes_written for o in adam) == g.params * (2 + 4 + 4)


def test_tp_allreduces_are_mirrored():
    g = build_model_graph(load_model("llama2-7b"), Phase.TRAIN, 1, 64, tp=4, layers=3)
    fwd = [o for o in g.ops if o.kind == OpKind.ALLREDUCE and o.attr("pass") is None and o.tag == "tp.allreduce"
           and not o.name.startswith("loss")]
    bwd = [o for o in g.ops if o.kind == OpKind.ALLREDUCE and o.attr("pass") == "backward"]
    assert len(fwd) == len(bwd) == 3 * 2 + 1
    assert sorted(o.bytes for o in fwd) == sorted(o.bytes for o in bwd)


def test_tied_embedding_gradients_are_summed():
    g = build_model_graph(load_model("opt-13b"), Phase.TRAIN, 1, 32, layers=1)
    acc = g.op("embed.weight.grad_acc")
    assert {t.name for t in acc.inputs} == {"embed.bwd.dw", "lm_head.bwd.dw"}


def test_sparse_training_scales_weight_gemms_and_keeps_dense_params():
    cfg = load_model("opt-13b")
    dense = build_model_graph(cfg, Phase.TRAIN, 1, 256, layers=2)
    sparse = build_model_graph(cfg, Phase.TRAIN, 1, 256, layers=2, weight_density=0.125)
    assert sparse.params == dense.params
    for name in ("L1.attn.qkv", "L1.attn.qkv.bwd_dx", "L1.attn.qkv.bwd_dw", "L0.mlp.down.bwd_dw"):
        assert sparse.op(name).flops == pytest.approx(dense.op(name).flops * 0.125)
    assert sparse.op("lm_head.bwd_dw").flops == dense.op("lm_head.bwd_dw").flops     # head stays dense
    assert sparse.op("L0.attn.score").flops == dense.op("L0.attn.score").flops       # activations dense
    assert sparse.param_bytes < dense.param_bytes
