"""Issue 23, item 1: parameter-efficient training graphs (LoRA, QLoRA, BitFit, checkpointing)."""

import functools

import pytest
from hypothesis import given, settings, strategies as st

from rdusim.config.model import load_model
from rdusim.graph.decoder import DEQUANT_TAG
from rdusim.graph.peft import LORA_MODULES, PeftSpec, TrainMethod, trainable_weights
from rdusim.graph.tensor import DType, TensorRole
from rdusim.graph.train_memory import ADAM_STATE_BYTES_PER_ELEMENT, training_memory
from rdusim.graph.training import ADAM_FLOPS_PER_PARAM, training_build

ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@functools.cache
def _model(name):
    return load_model(name)


def _pass(op):
    return op.attr("pass", "forward")


def _trainable_params(cfg, spec, **kw):
    ops, idle = training_build(cfg, 1, 64, peft=spec, **kw)
    names = trainable_weights(ops, idle, spec)
    ws = {t.name: t for op in ops for t in op.inputs if t.role == TensorRole.WEIGHT} | {t.name: t for t in idle}
    return sum(t.numel for n, t in ws.items() if n in names)


@pytest.mark.parametrize("rank,targets,published", [
    (8, ("q_proj", "v_proj"), 4_194_304),     # PEFT's print_trainable_parameters, Llama-2-7b, r=8 on q,v
    (16, ("q_proj", "v_proj"), 8_388_608),
    (16, ALL_LINEAR, 39_976_960),              # r=16 on every linear of the decoder
])
def test_lora_trainable_parameters_match_peft_counts(rank, targets, published):
    assert _trainable_params(_model("llama2-7b"), PeftSpec(TrainMethod.LORA, rank=rank, targets=targets)) == published


def test_lora_counts_by_hand_for_gqa_and_moe():
    # Mistral-7B (GQA: 8 KV heads of 128): q 4096->4096, v 4096->1024; r=16, 32 layers
    assert _trainable_params(_model("mistral-7b"), PeftSpec(TrainMethod.LORA, rank=16)) == \
        32 * 16 * ((4096 + 4096) + (4096 + 1024))
    # Mixtral-8x7B, every expert's w1/w3/w2 and the router, r=16: experts without tokens count too
    per_expert = 3 * 16 * (4096 + 14336)
    router = 16 * (4096 + 8)
    got = _trainable_params(_model("mixtral-8x7b"), PeftSpec(TrainMethod.QLORA, rank=16,
                                                          targets=("gate_proj", "up_proj", "down_proj", "router")),
                            layers=2)
    assert got == 2 * (8 * per_expert + router)


def test_full_fine_tuning_is_todays_graph():
    cfg = _model("llama2-7b")
    assert training_build(cfg, 1, 64, layers=2) == training_build(cfg, 1, 64, layers=2, peft=PeftSpec())


@settings(max_examples=12, deadline=None)
@given(rank=st.sampled_from([1, 4, 8, 16, 64]),
       targets=st.lists(st.sampled_from(ALL_LINEAR), min_size=1, max_size=4, unique=True),
       seq=st.sampled_from([16, 64, 256]), tp=st.sampled_from([1, 2]))
def test_lora_optimizer_and_weight_gradients_scale_with_adapters_only(rank, targets, seq, tp):
    cfg = _model("llama2-7b")
    spec = PeftSpec(TrainMethod.LORA, rank=rank, targets=tuple(targets))
    ops, idle = training_build(cfg, 2, seq, tp=tp, layers=2, peft=spec)
    names = trainable_weights(ops, idle, spec)
    adapters = {t.name: t for op in ops for t in op.inputs if t.name in names}
    # AdamW: 12 FLOPs per trainable element, over adapters only
    opt = sum(op.flops for op in ops if _pass(op) == "optimizer")
    assert opt == pytest.approx(ADAM_FLOPS_PER_PARAM * sum(t.numel for t in adapters.values()))
    # weight gradients: one dW GEMM per adapter matrix, none for a frozen base weight
    dw = [op for op in ops if op.name.endswith("bwd_dw")]
    assert dw and all(".lora_" in op.name for op in dw)
    assert len(dw) == len(adapters)
    # and every dW GEMM has the FLOPs of its forward GEMM: 2*m*n*k with k or n the rank
    fwd = {op.name: op for op in ops if _pass(op) == "forward"}
    assert sum(op.flops for op in dw) == pytest.approx(sum(fwd[op.name[:-len(".bwd_dw")]].flops for op in dw))


def test_frozen_weights_still_pass_input_gradients():
    cfg = _model("llama2-7b")
    ops, _ = training_build(cfg, 1, 64, layers=2, peft=PeftSpec(TrainMethod.LORA, rank=8))
    names = {op.name for op in ops}
    # layer 1's MLP is frozen and has no adapter, yet the gradient reaches layer 0's adapters through it
    assert "L1.mlp.down.bwd_dx" in names and "L1.mlp.down.bwd_dw" not in names
    # layer 0's input comes from a frozen embedding: nothing needs its gradient
    assert "L0.attn.qkv.bwd_dx" not in names and "embed.bwd" not in names


def test_qlora_dequantises_in_forward_backward_and_recompute():
    cfg = _model("llama2-7b")
    spec = PeftSpec(TrainMethod.QLORA, rank=16, checkpointing=True)
    ops, _ = training_build(cfg, 1, 64, layers=2, peft=spec)
    deq = [op for op in ops if op.tag == DEQUANT_TAG]
    by_pass = {p: sum(1 for op in deq if _pass(op) == p) for p in ("forward", "backward", "recompute")}
    assert by_pass["forward"] == 2 * 4                     # qkv, o, gate_up, down per layer
    assert by_pass["recompute"] == 2 * 4
    assert by_pass["backward"] == 2 * 4 - 1                # not layer 0's qkv: its input needs no gradient
    base = [t for op in ops for t in op.inputs if t.role == TensorRole.WEIGHT and t.name.endswith("qkv.weight")]
    assert base and all(t.dtype == DType.NF4 for t in base)
    w = base[0]
    assert w.nbytes == pytest.approx(w.numel / 2 + w.numel / 64 * (1 + 4 / 256))   # 4.127 bits per weight


def test_checkpointing_recomputes_each_layer_once_and_saves_less():
    cfg = _model("llama2-7b")
    plain = PeftSpec(TrainMethod.LORA, rank=8)
    ck = PeftSpec(TrainMethod.LORA, rank=8, checkpointing=True)
    ops0, idle0 = training_build(cfg, 1, 256, layers=3, peft=plain)
    ops1, idle1 = training_build(cfg, 1, 256, layers=3, peft=ck)
    fwd_layer_ops = [op for op in ops0 if _pass(op) == "forward" and op.block.startswith("L")]
    rc = [op for op in ops1 if _pass(op) == "recompute"]
    assert len(rc) == len(fwd_layer_ops)
    assert sum(op.flops for op in rc) == pytest.approx(sum(op.flops for op in fwd_layer_ops))
    m0 = training_memory(ops0, idle0, trainable_weights(ops0, idle0, plain))
    m1 = training_memory(ops1, idle1, trainable_weights(ops1, idle1, ck))
    assert m1.activation_bytes < m0.activation_bytes / 2
    assert m1.frozen_weight_bytes == m0.frozen_weight_bytes and m1.gradient_bytes == m0.gradient_bytes


def test_training_memory_by_hand_for_full_and_lora():
    cfg = _model("llama2-7b")
    ops, idle = training_build(cfg, 1, 64, layers=1)
    m = training_memory(ops, idle, None)
    params = sum(t.numel for t in {t.name: t for op in ops for t in op.inputs if t.role == TensorRole.WEIGHT}.values())
    assert m.trainable_weight_bytes == m.gradient_bytes == 2 * params and m.frozen_weight_bytes == 0
    assert m.optimizer_bytes == ADAM_STATE_BYTES_PER_ELEMENT * params
    spec = PeftSpec(TrainMethod.LORA, rank=8)
    ops, idle = training_build(cfg, 1, 64, layers=1, peft=spec)
    m = training_memory(ops, idle, trainable_weights(ops, idle, spec))
    assert m.trainable_weight_bytes == 2 * 8 * (4096 + 4096) * 2       # q and v adapters, bf16
    assert m.optimizer_bytes == 8 * 8 * (4096 + 4096) * 2


def test_bad_specs_are_refused():
    with pytest.raises(ValueError):
        PeftSpec(TrainMethod.LORA, rank=0)
    with pytest.raises(ValueError):
        PeftSpec(TrainMethod.LORA, targets=("qkv",))
    with pytest.raises(ValueError):        # Llama has no bias vectors to train
        training_build(_model("llama2-7b"), 1, 16, layers=1, peft=PeftSpec(TrainMethod.BITFIT))
    assert set(ALL_LINEAR) < set(LORA_MODULES)


def test_bitfit_trains_only_biases():
    cfg = _model("bloom-176b")
    spec = PeftSpec(TrainMethod.BITFIT)
    ops, idle = training_build(cfg, 1, 16, layers=1, tp=8, peft=spec)
    names = trainable_weights(ops, idle, spec)
    assert names and all(n.endswith(".bias") for n in names)
    assert not [op for op in ops if op.name.endswith("bwd_dw")]          # no weight-matrix gradients
    biases = {t.name: t for op in ops for t in op.inputs if t.name in names}
    opt = sum(op.flops for op in ops if _pass(op) == "optimizer")
    assert opt == pytest.approx(ADAM_FLOPS_PER_PARAM * sum(t.numel for t in biases.values()))
