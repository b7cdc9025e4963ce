"""The forward pass of a whole model on one TP rank: embedding -> decoder layers -> final norm
-> LM head (the inference graphs and the forward half of training graphs build on it).

Tensor parallelism (Megatron / vLLM): when the vocabulary divides by ``tp`` the embedding
table and the LM head are split by vocabulary rows (the lookup is followed by an
all-reduce, the logits by an all-gather); otherwise both are replicated. A tied head
reads the embedding table (transposed). Learned position tables are replicated.
LLaVA prefill (and training) prepends the vision encoder and projector; its image tokens
are part of the ``seq`` tokens of the sequence (text tokens = seq - image tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

from rdusim.config.model import ModelConfig, NormKind, PositionKind
from rdusim.config import limits as L
from rdusim.errors import InputError
from rdusim.graph import ops as O
from rdusim.graph.decoder import decoder_layer
from rdusim.graph.opgraph import OpGraph
from rdusim.graph.ops import Op
from rdusim.graph.phase import Phase
from rdusim.graph.tensor import DType, Tensor, TensorRole
from rdusim.graph.vision import vision_ops
from rdusim.graph.vision import vision_weights

W = TensorRole.WEIGHT


def check_request(cfg: ModelConfig, phase: Phase, batch: int, seq: int, tp: int, file: str = "request",
                  weight_density: float = 1.0) -> None:
    """Reject a request the builders cannot honour, naming the offending key."""
    for key, val, most in (("batch", batch, L.MAX_BATCH), ("seq", seq, L.MAX_TOKENS), ("tp", tp, L.MAX_TP)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise InputError(file, key, "a positive integer", val)
        if val > most:
            raise InputError(file, key, f"at most {most} (rdusim's limit for {key})", val)
    kvh = cfg.num_key_value_heads
    if cfg.num_attention_heads % tp or cfg.intermediate_size % tp or (kvh % tp if kvh >= tp else tp % kvh):
        raise InputError(file, "tp", f"a divisor of num_attention_heads ({cfg.num_attention_heads}) and "
                         f"intermediate_size ({cfg.intermediate_size}) that divides or is divided by "
                         f"num_key_value_heads ({kvh})", tp)
    if not 0 < weight_density <= 1:
        raise InputError(file, "weight_density", "a fraction in (0, 1]", weight_density)
    if phase == Phase.TRAIN and cfg.fmt != cfg.formats.__class__().resolved(cfg.torch_dtype):
        raise InputError(file, "formats", f"the model dtype ({cfg.torch_dtype.value}) for training "
                         "(quantised formats are for inference)", cfg.fmt.label)
    if cfg.vision is not None and phase != Phase.DECODE and seq <= cfg.vision.image_tokens:
        raise InputError(file, "seq", f"more than the {cfg.vision.image_tokens} image tokens of "
                         f"{cfg.name} (the prompt includes them)", seq)


@dataclass(frozen=True)
class ForwardBuild:
    ops: list[Op]
    idle_weights: list[Tensor]     # held by the rank, not read this step (MoE experts not hit)
    hidden: Tensor                 # output of the final norm


def vocab_shard(cfg: ModelConfig, tp: int) -> int:
    """Vocabulary rows per rank (the whole vocabulary when it does not divide by tp)."""
    return cfg.vocab_size // tp if cfg.vocab_size % tp == 0 else cfg.vocab_size


def _embed(cfg: ModelConfig, phase: Phase, batch: int, seq: int, tp: int, new_tokens: int = 1) -> list[Op]:
    q = new_tokens if phase == Phase.DECODE else seq
    dt, h = cfg.torch_dtype, cfg.hidden_size
    image = cfg.vision is not None and phase != Phase.DECODE
    text = q - cfg.vision.image_tokens if image else q
    ids = Tensor("tokens", (batch, text), DType.FP32, TensorRole.INPUT)  # int32 token ids
    vocab = vocab_shard(cfg, tp)
    ops: list[Op] = [O.embedding("embed", ids, Tensor("embed.weight", (vocab, h), dt, W), "embed.out",
                                 tag="embed")]
    if vocab != cfg.vocab_size:   # each rank looked up its own rows: sum the partial embeddings
        ops.append(O.allreduce("embed.allreduce", ops[-1].outputs[0], tp, "embed.reduced", tag="tp.allreduce"))
    x = ops[-1].outputs[0]
    if image:
        v_ops, img = vision_ops(cfg, batch)
        ops += v_ops
        ops.append(O.concat("embed.merge_image", [img, x], 1, "embed.merged", tag="embed"))
        x = ops[-1].outputs[0]
    if cfg.position_embedding == PositionKind.LEARNED:
        pos = Tensor("positions", (batch, q), DType.FP32, TensorRole.INPUT)
        table = Tensor("embed_positions.weight", (cfg.position_table_rows, h), dt, W)
        ops.append(O.embedding("embed_positions", pos, table, "embed_positions.out", tag="embed"))
        ops.append(O.elementwise("embed.add_positions", [x, ops[-1].outputs[0]], "embed.with_positions",
                                 tag="embed"))
        x = ops[-1].outputs[0]
    if cfg.embedding_norm:
        params = [Tensor("embed_norm.weight", (h,), dt, W), Tensor("embed_norm.bias", (h,), dt, W)]
        ops.append(O.norm("embed_norm", x, params, "embed_norm.out", rms=False, tag="norm"))
    return ops


def forward_build(cfg: ModelConfig, phase: Phase, batch: int, seq: int, tp: int = 1,
                  layers: int | None = None, weight_density: float = 1.0, new_tokens: int = 1) -> ForwardBuild:
    """Embedding, decoder layers and final norm on one TP rank (no LM head)."""
    ops = _embed(cfg, phase, batch, seq, tp, new_tokens)
    x = ops[-1].outputs[0]
    idle: list[Tensor] = []
    if cfg.vision is not None and phase == Phase.DECODE:   # the encoder is held, not run
        idle.extend(vision_weights(cfg))
    n = cfg.num_hidden_layers if layers is None else min(layers, cfg.num_hidden_layers)
    for i in range(n):
        layer_ops, x = decoder_layer(cfg, phase, batch, seq, x, tp=tp, layer=i,
                                     weight_density=weight_density, idle_weights=idle, new_tokens=new_tokens)
        ops.extend(layer_ops)
    rms = cfg.norm == NormKind.RMSNORM
    params = [Tensor("final_norm.weight", (cfg.hidden_size,), cfg.torch_dtype, W)]
    if not rms:
        params.append(Tensor("final_norm.bias", (cfg.hidden_size,), cfg.torch_dtype, W))
    ops.append(O.norm("final_norm", x, params, "final_norm.out", rms=rms, tag="norm"))
    return ForwardBuild(ops, idle, ops[-1].outputs[0])


def head_op(cfg: ModelConfig, x: Tensor, tp: int) -> Op:
    """The LM head GEMM on this rank's vocabulary rows."""
    vocab = vocab_shard(cfg, tp)
    if cfg.tie_word_embeddings:
        table = Tensor("embed.weight", (vocab, cfg.hidden_size), cfg.torch_dtype, W)
        return O.linear("lm_head", x, table, "logits", transpose_w=True, tag="head")
    weight = Tensor("lm_head.weight", (cfg.hidden_size, vocab), cfg.torch_dtype, W)
    return O.linear("lm_head", x, weight, "logits", tag="head")


def forward_ops(cfg: ModelConfig, phase: Phase, batch: int, seq: int, tp: int = 1,
                layers: int | None = None, weight_density: float = 1.0) -> list[Op]:
    """Forward ops of the language model on one TP rank (``layers`` limits the depth).
    Outside training only the last position's logits are computed."""
    return inference_build(cfg, phase, batch, seq, tp, layers, weight_density).ops


def inference_build(cfg, phase, batch, seq, tp, layers, weight_density, new_tokens: int = 1) -> ForwardBuild:
    """The forward pass with the LM head: an inference step's graph."""
    fb = forward_build(cfg, phase, batch, seq, tp, layers, weight_density, new_tokens)
    ops, x = list(fb.ops), fb.hidden
    # the next token from the last position; verifying a draft needs every new position's logits
    if phase == Phase.PREFILL and x.shape[1] > 1:
        ops.append(O.slice_("head.select_last", x, 1, x.shape[1] - 1, x.shape[1], "head.last", tag="head"))
        x = ops[-1].outputs[0]
    ops.append(head_op(cfg, x, tp))
    if vocab_shard(cfg, tp) != cfg.vocab_size:
        ops.append(O.allgather("head.allgather", ops[-1].outputs[0], tp, "logits.full", tag="tp.allgather"))
    return ForwardBuild(ops, fb.idle_weights, x)
