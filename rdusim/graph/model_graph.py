"""Whole-model graphs: embedding -> decoder layers -> final norm -> LM head, per TP rank."""

from __future__ import annotations

from rdusim.config.model import ModelConfig, NormKind
from rdusim.errors import InputError
from rdusim.graph import ops as O
from rdusim.graph.decoder import decoder_layer
from rdusim.graph.opgraph import OpGraph
from rdusim.graph.ops import Op
from rdusim.graph.phase import Phase
from rdusim.graph.tensor import DType, Tensor, TensorRole


def check_request(cfg: ModelConfig, phase: Phase, batch: int, seq: int, tp: int, file: str = "request") -> None:
    if batch < 1:
        raise InputError(file, "batch", "a positive integer", batch)
    if seq < 1:
        raise InputError(file, "seq", "a positive integer", seq)
    if tp < 1 or cfg.num_attention_heads % tp or cfg.intermediate_size % tp:
        raise InputError(file, "tp", f"a divisor of num_attention_heads ({cfg.num_attention_heads}) and "
                         f"intermediate_size ({cfg.intermediate_size})", tp)


def forward_ops(cfg: ModelConfig, phase: Phase, batch: int, seq: int, tp: int = 1,
                layers: int | None = None) -> list[Op]:
    """Forward ops of the language model on one TP rank (``layers`` limits the depth)."""
    q = 1 if phase == Phase.DECODE else seq
    dt = cfg.torch_dtype
    ids = Tensor("tokens", (batch, q), DType.FP32, TensorRole.INPUT)  # int32 token ids
    table = Tensor("embed.weight", (cfg.vocab_size, cfg.hidden_size), dt, TensorRole.WEIGHT)
    ops: list[Op] = [O.embedding("embed", ids, table, "embed.out", tag="embed")]
    x = ops[-1].outputs[0]
    if cfg.embedding_norm:
        params = [Tensor("embed_norm.weight", (cfg.hidden_size,), dt, TensorRole.WEIGHT),
                  Tensor("embed_norm.bias", (cfg.hidden_size,), dt, TensorRole.WEIGHT)]
        ops.append(O.norm("embed_norm", x, params, "embed_norm.out", rms=False, tag="norm"))
        x = ops[-1].outputs[0]
    n = cfg.num_hidden_layers if layers is None else min(layers, cfg.num_hidden_layers)
    for i in range(n):
        layer_ops, x = decoder_layer(cfg, phase, batch, seq, x, tp=tp, layer=i)
        ops.extend(layer_ops)
    rms = cfg.norm == NormKind.RMSNORM
    params = [Tensor("final_norm.weight", (cfg.hidden_size,), dt, TensorRole.WEIGHT)]
    if not rms:
        params.append(Tensor("final_norm.bias", (cfg.hidden_size,), dt, TensorRole.WEIGHT))
    ops.append(O.norm("final_norm", x, params, "final_norm.out", rms=rms, tag="norm"))
    x = ops[-1].outputs[0]
    # the LM head only needs the last position's logits outside training
    if phase != Phase.TRAIN and q > 1:
        last = Tensor("head.last", (batch, 1, cfg.hidden_size), dt)
        ops.append(Op("head.select_last", O.OpKind.RESHAPE, (x,), (last,), 0.0, last.nbytes, last.nbytes,
                      tag="head"))
        x = last
    head_name = "embed.weight" if cfg.tie_word_embeddings else "lm_head.weight"
    vocab = cfg.vocab_size // tp if cfg.vocab_size % tp == 0 else cfg.vocab_size
    head = Tensor(head_name, (cfg.hidden_size, vocab), dt, TensorRole.WEIGHT)
    if cfg.tie_word_embeddings and vocab != cfg.vocab_size:
        head = Tensor("lm_head.shard", (cfg.hidden_size, vocab), dt, TensorRole.CONSTANT)
    ops.append(O.linear("lm_head", x, head, "logits", tag="head"))
    if tp > 1 and vocab != cfg.vocab_size or (tp > 1 and vocab * tp == cfg.vocab_size):
        ops.append(O.allgather("head.allgather", ops[-1].outputs[0], tp, "logits.full", tag="tp.allgather"))
    return ops


def build_model_graph(cfg: ModelConfig, phase: Phase, batch: int, seq: int, *, tp: int = 1,
                      layers: int | None = None) -> OpGraph:
    """The graph one TP rank runs for one step of ``phase``."""
    check_request(cfg, phase, batch, seq, tp)
    if phase == Phase.TRAIN:
        from rdusim.graph.training import training_ops  # local: training builds on forward_ops
        ops = training_ops(cfg, batch, seq, tp=tp, layers=layers)
    else:
        ops = forward_ops(cfg, phase, batch, seq, tp, layers)
    return OpGraph(f"{cfg.name}.{phase.value}.b{batch}.s{seq}.tp{tp}", ops, source=cfg.name)
