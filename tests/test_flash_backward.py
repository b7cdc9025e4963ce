"""FlashAttention-2's backward in training graphs (rdusim.graph.flash_backward): no score
matrix kept for the backward, five score-shaped products recomputed in it; an eager
attention (the generic backward) keeps scores and probabilities."""

from __future__ import annotations

from dataclasses import replace

import pytest

from rdusim.config.arch import load_arch
from rdusim.config.execution import ExecutionConfig
from rdusim.config.model import load_model
from rdusim.config.policy import FusionPolicy
from rdusim.config.stack import AttentionBackward, load_stack
from rdusim.engine.families import family
from rdusim.engine.gpu.fusion_rules import partition
from rdusim.engine.gpu.kernels import kernel_time
from rdusim.graph.opgraph import OpGraph
from rdusim.graph.peft import PeftSpec, TrainMethod, trainable_weights
from rdusim.graph.train_memory import training_memory
from rdusim.graph.training import training_build
from rdusim.workspace import materialised

CFG = replace(load_model("llama2-7b"), num_hidden_layers=1)
SPEC = PeftSpec(TrainMethod.LORA, rank=16)
B, S = 2, 512


def _graph(flash: bool, ckpt: bool = False) -> OpGraph:
    ops, idle = training_build(CFG, B, S, peft=replace(SPEC, checkpointing=ckpt), flash_attention=flash)
    return OpGraph("g", ops, idle_weights=idle)


def _saved(graph: OpGraph, arch) -> tuple[float, frozenset[str]]:
    kernels = family(arch).kernel_ops(arch, graph, FusionPolicy.FUSED, ExecutionConfig())
    names = materialised(graph.ops, kernels).names
    ops, idle = list(graph.ops), list(graph.idle_weights)
    return training_memory(ops, idle, trainable_weights(ops, idle, SPEC), names).activation_bytes, names


def test_hf_peft_declares_flash_attention_and_the_default_keeps_scores():
    assert load_stack("hf_peft").attention_backward == AttentionBackward.RECOMPUTE
    assert load_stack("vllm").attention_backward == AttentionBackward.SAVED
    assert load_stack("hf_peft", [("attention_backward", "saved")]).attention_backward == AttentionBackward.SAVED


def test_memory_flash_keeps_no_scores_eager_keeps_scores_and_probabilities():
    """By hand: the eager backward saves the (b, kv heads, g x s, s) scores and probabilities
    (bf16); FlashAttention-2 saves instead the rows' fp32 logsumexp and its output O."""
    arch = load_arch("arch/a100_80gb.yaml")
    eager, flash = _graph(False), _graph(True)
    e_bytes, e_names = _saved(eager, arch)
    f_bytes, f_names = _saved(flash, arch)
    heads, d = CFG.num_attention_heads, CFG.head_dim
    n2 = B * heads * S * S * 2                                   # one bf16 score-sized matrix
    assert {"L0.attn.scores", "L0.attn.probs"} <= e_names
    assert not {"L0.attn.scores", "L0.attn.probs"} & f_names
    assert {"L0.attn.lse", "L0.attn.ctx"} <= f_names
    assert e_bytes - f_bytes == pytest.approx(2 * n2 - B * heads * S * 4 - B * heads * S * d * 2)
    # with checkpointing, the recomputed layer's peak holds no score matrix either
    ce, _ = _saved(_graph(False, True), arch)
    cf, _ = _saved(_graph(True, True), arch)
    assert ce - cf >= 2 * n2 - B * heads * S * 4 - B * heads * S * d * 2


def test_time_the_backward_recomputes_the_scores_in_one_kernel():
    """One backward attention kernel per layer: five products of the forward's score shape
    (FLOPs 2.5x the forward's two GEMMs, plus the softmax twice), timed as such -- between
    2x and 3x the forward attention kernel on the same shape."""
    arch = load_arch("arch/a100_80gb.yaml")
    g = _graph(True)
    fwd = {op.tag: op for op in g.ops if op.attr("pass") is None}
    bwd = [op for op in g.ops if op.tag == "attn.flash_bwd"]
    assert len(bwd) == 1 and bwd[0].name == "L0.attn.bwd_flash"
    want = 2.5 * (fwd["attn.score"].flops + fwd["attn.context"].flops) + 2 * fwd["attn.softmax"].flops
    assert bwd[0].flops == pytest.approx(want)
    assert not [op for op in g.ops if op.tag in ("attn.score", "attn.softmax", "attn.context")
                and op.attr("pass") == "backward"]
    kernels = {k.name: k for k in partition(g, FusionPolicy.FUSED, arch)}
    kb = kernels["L0.attn.bwd_flash"]
    kf = next(k for k in kernels.values() if "L0.attn.score" in k.ops)
    assert kb.ops == ("L0.attn.bwd_flash",) and kb.work.attention.matmuls == 5
    assert (kb.work.attention.heads, kb.work.attention.rows, kb.work.attention.ctx) == \
        (kf.work.attention.heads, kf.work.attention.rows, kf.work.attention.ctx)
    tb, tf = kernel_time(arch, kb.work).duration_s, kernel_time(arch, kf.work).duration_s
    assert 2.0 * tf < tb < 3.0 * tf
    # eager PyTorch (unfused policy) still runs it as the library kernel it is
    assert any(k.ops == ("L0.attn.bwd_flash",) and k.work.attention is not None
               for k in partition(g, FusionPolicy.UNFUSED, arch))


def test_gradients_reach_q_k_v_as_in_the_eager_graph():
    """The same weights get gradients either way (the attention's inputs are differentiated)."""
    e, f = _graph(False), _graph(True)
    grads = lambda g: sorted(t.name.split(".bwd")[0] for op in g.ops for t in op.outputs  # noqa: E731
                             if t.role.name == "GRADIENT")
    assert grads(e) == grads(f)


def test_the_eager_hf_stack_runs_every_epilogue_as_its_own_kernel_but_flash_attention_whole():
    """hf_peft is eager PyTorch (kernel_fusion: unfused): no GEMM epilogue, no vector chain --
    every GEMM kernel is one op, the LoRA add, residual adds and bitsandbytes' dequantise are
    kernels of their own -- while SDPA's FlashAttention-2 stays one kernel forward and one
    backward; the fused stack (vLLM-like library fusion) folds epilogues into GEMMs."""
    from rdusim.config.policy import FusionPolicy as FP
    from rdusim.config.workload import load_workload
    from rdusim.studies.finetune import fusion_of

    loaded = load_workload("workloads/finetune_mixtral_qlora.yaml")
    assert fusion_of(loaded, "a40") == FP.UNFUSED and fusion_of(loaded, "sn40l") == FP.FUSED
    arch = load_arch("arch/a40.yaml")
    ops, idle = training_build(CFG, B, S, peft=PeftSpec(TrainMethod.QLORA, rank=16, targets=("q_proj", "o_proj")),
                               flash_attention=True)
    g = OpGraph("g", ops, idle_weights=idle)
    eager = partition(g, FusionPolicy.UNFUSED, arch)
    fused = partition(g, FusionPolicy.FUSED, arch)
    by_op = lambda ks: {o: k for k in ks for o in k.ops}  # noqa: E731
    e, f = by_op(eager), by_op(fused)
    assert all(len(k.ops) == 1 for k in eager if k.work.attention is None)
    for name in ("L0.attn.o.lora_add", "L0.residual_attn", "L0.attn.o.weight.dequant"):
        assert e[name].ops == (name,)
    assert len(f["L0.residual_attn"].ops) > 1             # fused: the add is an epilogue
    assert e["L0.attn.score"].ops[:3] == ("L0.attn.score", "L0.attn.softmax", "L0.attn.context")
    assert e["L0.attn.bwd_flash"].ops == ("L0.attn.bwd_flash",)
    assert len(eager) > len(fused)
