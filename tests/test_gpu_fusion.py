"""GPU fusion rules: what library fusion merges, and what it cannot."""

import pytest

from rdusim.config.arch import load_arch
from rdusim.config.model import load_model
from rdusim.config.policy import FusionPolicy
from rdusim.engine.gpu.fusion_rules import partition
from rdusim.engine.gpu.kernels import KernelClass
from rdusim.graph import ops as O
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.opgraph import OpGraph
from rdusim.graph.phase import Phase
from rdusim.graph.tensor import Tensor, TensorRole

H100 = load_arch("arch/dgx_h100.yaml")
CFG = load_model("llama2-7b")
FUSED, UNFUSED = FusionPolicy.FUSED, FusionPolicy.UNFUSED


def _layer_kernels(kernels, layer=1):
    return [k for k in kernels if k.layer == layer]


def test_fused_decode_layer_kernels():
    g = build_model_graph(CFG, Phase.DECODE, 1, 256, tp=8, layers=3)
    ks = _layer_kernels(partition(g, FUSED, H100))
    by_tag = {k.tag: k for k in ks}
    # gated activation runs as the gate_up GEMM's epilogue
    assert any(o.endswith("mlp.act_mul") for o in by_tag["mlp.gate_up"].ops)
    # one FlashAttention kernel holds score, softmax and context
    attn = [k for k in ks if k.work.cls == KernelClass.ATTENTION]
    assert len(attn) == 1 and {"L1.attn.score", "L1.attn.softmax", "L1.attn.context"} <= set(attn[0].ops)
    # two all-reduces per layer, as NCCL kernels of their own
    assert sum(k.work.cls == KernelClass.COLLECTIVE for k in ks) == 2
    # a residual add and the following norm are one kernel
    assert any({"L1.residual_attn", "L1.post_attn_norm"} <= set(k.ops) for k in ks)
    # no kernel has two weight GEMMs
    for k in ks:
        assert sum(op.endswith(("qkv", "attn.o", "gate_up", "down")) for op in k.ops) <= 1


def test_unfused_is_one_kernel_per_operator_and_moves_more_bytes():
    g = build_model_graph(CFG, Phase.PREFILL, 1, 1024, tp=8, layers=2)
    fused, unfused = partition(g, FUSED, H100), partition(g, UNFUSED, H100)
    views = sum(op.kind.value in ("reshape", "slice") for op in g.ops)
    assert len(unfused) == len(g.ops) - views
    assert len(fused) < 0.65 * len(unfused)
    assert sum(k.work.flops for k in fused) == pytest.approx(sum(k.work.flops for k in unfused))
    assert sum(k.work.hbm_bytes for k in fused) < sum(k.work.hbm_bytes for k in unfused)
    # transposes are copy kernels when unfused, never on their own when fused
    assert any(k.tag == "attn.transpose" and len(k.ops) == 1 for k in unfused)
    assert not any(len(k.ops) == 1 and g.op(k.ops[0]).kind.value == "transpose" for k in fused)


def test_flash_attention_never_materialises_the_scores():
    seq = 2048
    g = build_model_graph(CFG, Phase.PREFILL, 1, seq, tp=8, layers=1)
    heads = CFG.num_attention_heads // 8
    scores = heads * seq * seq * 2
    fused = [k for k in partition(g, FUSED, H100) if k.work.cls == KernelClass.ATTENTION][0]
    unfused = [k for k in partition(g, UNFUSED, H100) if k.layer == 0 and k.tag in
               ("attn.score", "attn.softmax", "attn.context")]
    assert len(unfused) == 3
    qkvo = 4 * heads * seq * CFG.head_dim * 2
    assert fused.work.hbm_bytes == pytest.approx(qkvo)   # Q, K, V in, O out: nothing else
    assert qkvo < scores
    # unfused: scores written, read and written by softmax, read again by context
    assert sum(k.work.hbm_bytes for k in unfused) >= 4 * scores


def _tiny(ops):
    return OpGraph("tiny", ops)


def test_a_transpose_between_gemms_forces_a_trip_through_hbm():
    x = Tensor("x", (256, 512), role=TensorRole.INPUT)
    w0 = Tensor("w0", (512, 512), role=TensorRole.WEIGHT)
    w1 = Tensor("w1", (256, 256), role=TensorRole.WEIGHT)
    g0 = O.gemm("g0", x, w0, "y")
    t = O.transpose("t", g0.outputs[0], (1, 0), "yt")
    g1 = O.gemm("g1", t.outputs[0], w1, "z")
    ks = partition(_tiny([g0, t, g1]), FUSED, H100)
    assert len(ks) == 3          # the GEMMs cannot be fused across the shuffle
    inter = g0.outputs[0].nbytes
    assert ks[0].work.hbm_bytes >= inter and ks[1].work.hbm_bytes >= 2 * inter


def test_elementwise_epilogue_is_fused_into_its_gemm():
    x = Tensor("x", (64, 512), role=TensorRole.INPUT)
    w = Tensor("w", (512, 1024), role=TensorRole.WEIGHT)
    b = Tensor("b", (1024,), role=TensorRole.WEIGHT)
    g = O.gemm("g", x, w, "y")
    bias = O.elementwise("bias", [g.outputs[0], b], "yb")
    act = O.elementwise("act", [bias.outputs[0]], "ya", flops_per_element=4)
    ks = partition(_tiny([g, bias, act]), FUSED, H100)
    assert len(ks) == 1
    y = g.outputs[0].nbytes
    # only x, w, b read and the activated output written
    assert ks[0].work.hbm_bytes == pytest.approx(x.nbytes + w.nbytes + b.nbytes + y)
    assert len(partition(_tiny([g, bias, act]), UNFUSED, H100)) == 3


def test_norm_row_larger_than_shared_memory_is_not_fused():
    small_smem = load_arch("arch/dgx_h100.yaml", [("device.smem_bytes_per_sm", 4096)])
    g = build_model_graph(CFG, Phase.DECODE, 1, 128, tp=8, layers=2)
    normal = _layer_kernels(partition(g, FUSED, H100))
    cramped = _layer_kernels(partition(g, FUSED, small_smem))
    assert len(cramped) > len(normal)
    assert not any({"L1.residual_attn", "L1.post_attn_norm"} <= set(k.ops) for k in cramped)
