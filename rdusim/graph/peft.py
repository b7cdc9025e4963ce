"""Parameter-efficient fine-tuning: what a training step trains, as a rewrite of its forward.

A :class:`PeftSpec` names the method:

* ``full`` -- every weight trains (the training graph of :mod:`rdusim.graph.training` as is);
* ``lora`` -- the base weights are frozen; each targeted linear module (Hugging Face
  names: ``q_proj k_proj v_proj o_proj gate_proj up_proj down_proj router``; the MLP names
  also reach every MoE expert's MLP) gets a low-rank adapter ``y += (alpha/r) (x A) B``
  with A of shape (in, r) and B of shape (r, out) (Hu et al., 2021);
* ``qlora`` -- LoRA over a base whose decoder linear weights are stored in NF4 with
  double-quantised block scales and dequantised to bf16 by an op before each use
  (Dettmers et al., 2023; bitsandbytes ``Linear4bit``): once in the forward, again in the
  backward before the input-gradient GEMM, and again in a checkpointed recompute;
* ``bitfit`` -- only the bias vectors train (Ben Zaken et al., 2021).

The rewrite works on the forward ops the decoder builder made, so inference graphs are
untouched. The fused QKV and gate/up GEMMs of the builder carry one adapter per module:
one A GEMM for all targeted modules of the fused linear (their A matrices side by side)
and one B GEMM per module, whose outputs are added into that module's columns of the
output (one multiply-add per adapter output element). Under tensor parallelism an
adapter follows its base weight's sharding (A is (in per rank, r), B is (r, out per
rank)), which is exact for both column- and row-parallel linears (the row-parallel
partial sums go through the existing all-reduce).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field, replace

from rdusim.config.formats import DEQUANT_FLOPS_PER_ELEMENT
from rdusim.config.model import ModelConfig
from rdusim.graph.decoder import DEQUANT_TAG, MATERIALISED, LayerShape
from rdusim.graph.ops import Op, OpKind
from rdusim.graph.tensor import DType, Tensor, TensorRole

W = TensorRole.WEIGHT

LORA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "router")

# NF4 block scales (QLoRA, section 2 "Double Quantization"): one 8-bit absmax per 64 weights,
# and one fp32 second-level constant per 256 of those: 8/64 + 32/(64*256) bits per weight.
NF4_BLOCK = 64
NF4_SCALE_BYTES_PER_BLOCK = 1.0 + 4.0 / 256
ADAPTER_TAG = "lora"
MAX_RANK = 65_536
MAX_ALPHA = 1e6
_DECODER_BLOCK = re.compile(r"^L\d+$")
_LINEAR_TAGS = ("attn.qkv", "attn.o", "mlp.gate_up", "mlp.up", "mlp.down", "moe.router")


class TrainMethod(enum.Enum):
    FULL = "full"
    LORA = "lora"
    QLORA = "qlora"
    BITFIT = "bitfit"

    @property
    def has_adapters(self) -> bool:
        return self in (TrainMethod.LORA, TrainMethod.QLORA)


@dataclass(frozen=True)
class PeftSpec:
    """What a training step trains. ``rank``, ``alpha`` and ``targets`` matter for LoRA and
    QLoRA only; ``checkpointing`` recomputes each decoder layer's forward in its backward."""

    method: TrainMethod = TrainMethod.FULL
    rank: int = field(default=16, metadata={"gt": 0, "le": MAX_RANK})
    alpha: float = field(default=32.0, metadata={"gt": 0, "le": MAX_ALPHA})
    targets: tuple[str, ...] = ("q_proj", "v_proj")
    checkpointing: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.rank, int) or not 1 <= self.rank <= MAX_RANK:
            raise ValueError("rank", f"an integer in 1..{MAX_RANK}", self.rank)
        if not 0 < self.alpha <= MAX_ALPHA:
            raise ValueError("alpha", f"a number in (0, {MAX_ALPHA:g}]", self.alpha)
        unknown = [t for t in self.targets if t not in LORA_MODULES]
        if unknown:
            raise ValueError("targets", f"module names among {list(LORA_MODULES)}", unknown)
        if self.method.has_adapters and not self.targets:
            raise ValueError("targets", "at least one module for LoRA", [])

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


@dataclass(frozen=True)
class PeftForward:
    ops: list[Op]
    trainable: frozenset[str] | None  # names of the weights that get gradients (None: every weight)
    idle_weights: list[Tensor]        # held, not read this step (experts without tokens)

    def trains(self, t: Tensor) -> bool:
        return t.role == W and (self.trainable is None or t.name in self.trainable)

    @staticmethod
    def every_weight(t: Tensor) -> bool:
        return t.role == W


def _modules(op: Op, shape: LayerShape) -> list[tuple[str, int]]:
    """(module name, output columns on this rank) of a decoder linear GEMM, in column order."""
    n = int(op.attr("n"))
    d = shape.cfg.head_dim
    return {
        "attn.qkv": [("q_proj", shape.heads * d), ("k_proj", shape.kv_heads * d), ("v_proj", shape.kv_heads * d)],
        "attn.o": [("o_proj", n)],
        "mlp.gate_up": [("gate_proj", n // 2), ("up_proj", n // 2)],
        "mlp.up": [("up_proj", n)],
        "mlp.down": [("down_proj", n)],
        "moe.router": [("router", n)],
    }.get(op.tag, [])


def _is_decoder_linear(op: Op) -> bool:
    return op.kind == OpKind.GEMM and _DECODER_BLOCK.match(op.block) is not None and op.tag in _LINEAR_TAGS


def apply_peft(ops: list[Op], idle: list[Tensor], cfg: ModelConfig, spec: PeftSpec, tp: int) -> PeftForward:
    """The forward of a training step under ``spec`` (``full``: unchanged)."""
    if spec.method == TrainMethod.FULL:
        return PeftForward(list(ops), None, list(idle))
    if spec.method == TrainMethod.BITFIT:
        trainable = trainable_weights(ops, idle, spec)
        if not trainable:
            raise ValueError("method", "a model with bias vectors for BitFit", f"{cfg.name} (no biases)")
        return PeftForward(list(ops), trainable, list(idle))
    shape = LayerShape(cfg, tp)
    out: list[Op] = []
    new_idle: list[Tensor] = []
    quant = spec.method == TrainMethod.QLORA
    for op in ops:
        if not _is_decoder_linear(op):
            out.append(op)
            continue
        base = _quantised(op, out) if quant else op
        out.extend(_adapted(base, _modules(op, shape), spec))
    for t in idle:          # experts without tokens: their adapters (and NF4 base) are held too
        m = re.match(r"^(L\d+\.moe\.e\d+)\.(gate_up|up|down)\.weight$", t.name)
        if m is None:
            new_idle.append(t)
            continue
        new_idle.append(_nf4(t) if quant else t)
        cols = t.shape[1]
        part = {"gate_up": [("gate_proj", cols // 2), ("up_proj", cols // 2)],
                "up": [("up_proj", cols)], "down": [("down_proj", cols)]}[m.group(2)]
        mods = [(name, c) for name, c in part if name in spec.targets]
        if mods:
            a, bs = _adapter_weights(f"{m.group(1)}.{m.group(2)}", t.shape[0], mods, spec.rank, t.dtype)
            new_idle += [a, *bs]
    return PeftForward(out, trainable_weights(out, new_idle, spec), new_idle)


def trainable_weights(ops: list[Op], idle: list[Tensor], spec: PeftSpec) -> frozenset[str] | None:
    """Names of the weights of a (rewritten) training graph that train under ``spec``
    (None: every weight)."""
    if spec.method == TrainMethod.FULL:
        return None
    names = {t.name for op in ops for t in op.inputs if t.role == W} | {t.name for t in idle if t.role == W}
    keep = (lambda n: n.endswith(".bias")) if spec.method == TrainMethod.BITFIT else is_adapter
    return frozenset(n for n in names if keep(n))


def is_adapter(name: str) -> bool:
    return name.endswith(".lora_a") or ".lora_b." in name


def _nf4(w: Tensor) -> Tensor:
    return Tensor(w.name, w.shape, DType.NF4, W, w.density, NF4_BLOCK, NF4_SCALE_BYTES_PER_BLOCK)


def dequant_op(stored: Tensor, out_name: str, dtype: DType, op: Op, suffix: str = ".dequant") -> Op:
    """bitsandbytes' dequantize kernel: read the NF4 codes and scales, write the bf16 weight
    out for the GEMM to read (``MatMul4Bit``: ``dequantize_4bit`` then a bf16 matmul), so no
    engine fuses it into the GEMM as a prologue."""
    y = Tensor(out_name, stored.shape, dtype, TensorRole.ACTIVATION, stored.density)
    return Op(stored.name + suffix, OpKind.ELEMENTWISE, (stored,), (y,),
              DEQUANT_FLOPS_PER_ELEMENT * stored.numel * stored.density, stored.nbytes, y.nbytes,
              layer=op.layer, tag=DEQUANT_TAG, block=op.block, attrs=((MATERIALISED, True),))


def _quantised(op: Op, out: list[Op]) -> Op:
    """The base GEMM reading an NF4 weight through a dequantise op appended to ``out``."""
    x, w = op.inputs
    if w.role != W:          # already dequantised by the model's own weight format
        return op
    deq = dequant_op(_nf4(w), w.name + ".dequantized", x.dtype, op)
    out.append(deq)
    return replace(op, inputs=(x, deq.outputs[0]))


def _adapter_weights(prefix: str, n_in: int, mods: list[tuple[str, int]], rank: int,
                     dtype: DType) -> tuple[Tensor, list[Tensor]]:
    a = Tensor(f"{prefix}.lora_a", (n_in, rank * len(mods)), dtype, W)
    bs = [Tensor(f"{prefix}.lora_b.{name}", (rank, cols), dtype, W) for name, cols in mods]
    return a, bs


def _adapted(op: Op, modules: list[tuple[str, int]], spec: PeftSpec) -> list[Op]:
    """The base GEMM (output renamed ``.base``), its adapters, and the add that gives the
    original output tensor back to the GEMM's consumers."""
    mods = [(name, cols) for name, cols in modules if name in spec.targets]
    if not mods:
        return [op]
    x, _ = op.inputs
    y = op.outputs[0]
    m, k = int(op.attr("m")), int(op.attr("k"))
    r = spec.rank
    kw = {"layer": op.layer, "block": op.block, "tag": ADAPTER_TAG}
    base_y = y.renamed(y.name + ".base")
    base = replace(op, outputs=(base_y,), bytes_written=base_y.nbytes)
    prefix = op.name
    a, bs = _adapter_weights(prefix, k, mods, r, x.dtype)
    h = Tensor(f"{prefix}.lora_h", (*x.shape[:-1], r * len(mods)), x.dtype)
    ops = [base, Op(f"{prefix}.lora_a", OpKind.GEMM, (x, a), (h,), 2.0 * m * k * r * len(mods),
                    x.nbytes + a.nbytes, h.nbytes, attrs=(("m", m), ("n", r * len(mods)), ("k", k), ("batch", 1)),
                    **kw)]
    deltas = []
    for i, ((name, cols), b) in enumerate(zip(mods, bs)):
        hi = Tensor(f"{prefix}.lora_h.{name}", (*x.shape[:-1], r), x.dtype)
        if len(mods) > 1:
            ops.append(Op(f"{prefix}.lora_split.{name}", OpKind.SLICE, (h,), (hi,), 0.0, hi.nbytes, hi.nbytes,
                          attrs=(("axis", len(h.shape) - 1), ("start", i * r), ("stop", (i + 1) * r)), **kw))
        else:
            hi = h
        d = Tensor(f"{prefix}.lora_d.{name}", (*x.shape[:-1], cols), x.dtype)
        ops.append(Op(f"{prefix}.lora_b.{name}", OpKind.GEMM, (hi, b), (d,), 2.0 * m * r * cols,
                      hi.nbytes + b.nbytes, d.nbytes, attrs=(("m", m), ("n", cols), ("k", r), ("batch", 1)), **kw))
        deltas.append(d)
    # y = base + scale * [d_q | 0 | d_v ...]: one multiply-add per adapter output element
    flops = float(sum(d.numel for d in deltas))
    ops.append(Op(f"{prefix}.lora_add", OpKind.ELEMENTWISE, (base_y, *deltas), (y,), flops,
                  base_y.nbytes + sum(d.nbytes for d in deltas), y.nbytes,
                  attrs=(("scale", spec.scale),), **kw))
    return ops
