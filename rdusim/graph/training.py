"""A training step: forward, loss, backward and an AdamW update, per TP rank.

Forward: the prefill-shaped forward with logits for every position, then a
vocabulary-parallel cross-entropy (local stats, an all-reduce of the per-token max /
sum-exp / target logit under TP, the mean). Backward, in reverse order of the forward,
only for tensors that depend on a weight (autograd's requires_grad):

* a GEMM gets a dX GEMM and a dW (or dB) GEMM with the forward's FLOPs each (so the GEMM
  part of a step is 3x the forward); sparse weights keep their density in both;
* norms, softmax, rotary and elementwise ops get one backward op over the same shapes
  with the forward's FLOPs; it reads the output gradients and the forward inputs it
  saved and writes one gradient per input that needs one (norm-parameter gradients are
  reductions to their shape); an add (FLOPs <= one per element: residual, bias,
  positions, ALiBi) passes its gradient through, with a reduction for broadcast operands;
* views (reshape, slice) have view backwards; a transpose is transposed back; a concat
  is sliced; slices of one tensor are concatenated back; an embedding scatter-adds
  the gradient rows into its table's gradient;
* each forward all-reduce is mirrored by one all-reduce of the same size on its gradient
  (Megatron's f/g pair: same count and size, placed at the mirror point);
* a tensor read by several ops sums its gradient contributions (``<tensor>.grad_acc``).

Optimizer: AdamW, one op per block (``L<i>.optim``, ``optim`` for the rest) over the
rank's weights that have gradients: it reads weights, gradients and the two fp32 moments
and writes the three back (no fp32 master copy: bf16 weights), 12 FLOPs per stored element.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable
from dataclasses import replace

from rdusim.config.model import ModelConfig
from rdusim.graph import ops as O
from rdusim.graph.forward import check_request, forward_build, head_op, vocab_shard
from rdusim.graph.checkpointing import recompute_layers
from rdusim.graph.decoder import DEQUANT_TAG
from rdusim.graph.ops import Op, OpKind
from rdusim.graph.peft import PeftForward, PeftSpec, TrainMethod, apply_peft
from rdusim.graph.phase import Phase
from rdusim.graph.tensor import DType, Tensor, TensorRole

ADAM_FLOPS_PER_PARAM = 12.0
_NO_GRAD = (TensorRole.INPUT, TensorRole.CONSTANT, TensorRole.KV_CACHE)


def training_ops(cfg: ModelConfig, batch: int, seq: int, *, tp: int = 1, layers: int | None = None,
                 weight_density: float = 1.0, peft: PeftSpec | None = None) -> list[Op]:
    """Every op of one training step on one TP rank."""
    check_request(cfg, Phase.TRAIN, batch, seq, tp, weight_density=weight_density)
    return training_build(cfg, batch, seq, tp=tp, layers=layers, weight_density=weight_density, peft=peft)[0]


def training_build(cfg: ModelConfig, batch: int, seq: int, *, tp: int = 1, layers: int | None = None,
                   weight_density: float = 1.0, peft: PeftSpec | None = None) -> tuple[list[Op], list[Tensor]]:
    """(ops, idle weights) of one training step; ``peft`` says what trains (default: all)."""
    spec = peft or PeftSpec()
    fb = forward_build(cfg, Phase.TRAIN, batch, seq, tp, layers, weight_density)
    pf = apply_peft(list(fb.ops), list(fb.idle_weights), cfg, spec, tp)
    fwd = pf.ops
    fwd.append(head_op(cfg, fb.hidden, tp))
    loss_ops, dlogits = _loss(cfg, fwd[-1].outputs[0], tp)
    bwd = _Backward(fwd, pf.trains, redequantise=spec.method == TrainMethod.QLORA)
    bwd.seed(fwd[-1].outputs[0], dlogits)
    back = bwd.run()
    if spec.checkpointing:
        back = recompute_layers(fwd, back)
    return fwd + loss_ops + back + _optimizer(fwd, bwd.weight_grads, bwd), list(pf.idle_weights)


def _loss(cfg: ModelConfig, logits: Tensor, tp: int) -> tuple[list[Op], Tensor]:
    b, s, _ = logits.shape
    labels = Tensor("labels", (b, s), DType.FP32, TensorRole.INPUT)
    stats = Tensor("loss.stats", (b, s, 3), DType.FP32)        # max, sum-exp, target logit
    ops = [Op("loss.stats", OpKind.REDUCE, (logits, labels), (stats,), 5.0 * logits.numel,
              logits.nbytes + labels.nbytes, stats.nbytes, tag="loss")]
    if vocab_shard(cfg, tp) != cfg.vocab_size:
        ops.append(O.allreduce("loss.allreduce", stats, tp, "loss.stats_all", tag="tp.allreduce"))
    total = ops[-1].outputs[0]
    ops.append(O.reduce("loss.mean", total, (1,), "loss", tag="loss"))
    # d(loss)/d(logits) = (softmax - onehot) / tokens
    dlogits = Tensor("logits.grad", logits.shape, logits.dtype)
    ops.append(Op("loss.bwd", OpKind.ELEMENTWISE, (logits, total, labels), (dlogits,), 3.0 * logits.numel,
                  logits.nbytes + total.nbytes + labels.nbytes, dlogits.nbytes, tag="loss",
                  attrs=(("pass", "backward"),)))
    return ops, dlogits


class _Backward:
    """Reverse-mode pass over forward ops (see the module docstring for the rules)."""

    def __init__(self, fwd: list[Op], trains: Callable[[Tensor], bool] = PeftForward.every_weight,
                 redequantise: bool = False):
        self.fwd = fwd
        self.trains = trains
        self.redequantise = redequantise
        self.ops: list[Op] = []
        self.producer: dict[str, Op] = {}
        self.needs: set[str] = set()
        for op in fwd:
            grad_in = any(self.trains(t) or t.name in self.needs for t in op.inputs)
            for t in op.outputs:
                self.producer[t.name] = op
                if grad_in and t.role not in _NO_GRAD:
                    self.needs.add(t.name)
        self.contrib: dict[str, list[tuple[Tensor, tuple | None]]] = defaultdict(list)
        self.weight_grads: dict[str, list[Tensor]] = defaultdict(list)
        self.weights: dict[str, Tensor] = {}

    def seed(self, t: Tensor, grad: Tensor) -> None:
        self.contrib[t.name].append((grad, None))

    def wants(self, t: Tensor) -> bool:
        return self.trains(t) or t.name in self.needs

    # ---- gradient bookkeeping ----
    def _kw(self, op: Op) -> dict:
        return {"layer": op.layer, "tag": op.tag, "block": op.block}

    def _give(self, t: Tensor, g: Tensor, part: tuple | None = None) -> None:
        if t.role == TensorRole.WEIGHT:
            self.weights[t.name] = t
            self.weight_grads[t.name].append(g)
        else:
            self.contrib[t.name].append((g, part))

    def grad(self, t: Tensor) -> Tensor | None:
        """The summed gradient of activation ``t`` (emitting the sum if needed)."""
        items = self.contrib.pop(t.name, [])
        if not items:
            return None
        full = [g for g, part in items if part is None]
        parts = sorted(((part, g) for g, part in items if part is not None), key=lambda pg: pg[0])
        src = self.producer.get(t.name)
        kw = self._kw(src) if src else {"tag": "grad"}
        name = f"{t.name}.grad"
        if not parts and len(full) == 1:
            return full[0]
        if not full and _tiles(parts, t):
            return self._emit(O.concat(f"{t.name}.grad_cat", [g for _, g in parts], parts[0][0][0],
                                       name, **kw))
        ins = full + [g for _, g in parts]
        y = Tensor(name, t.shape, t.dtype)
        adds = sum(g.numel for g in full[1:]) + sum(g.numel for _, g in parts) * bool(full)
        return self._emit(Op(f"{t.name}.grad_acc", OpKind.ELEMENTWISE, tuple(ins), (y,), float(adds),
                             sum(g.nbytes for g in ins), y.nbytes, **kw))

    def _emit(self, op: Op) -> Tensor:
        """Record a backward op (marked with attr pass=backward)."""
        self.ops.append(replace(op, attrs=op.attrs + (("pass", "backward"),)))
        return op.outputs[0]

    # ---- the pass ----
    def run(self) -> list[Op]:
        for op in reversed(self.fwd):
            dys = [self.grad(t) for t in op.outputs]
            if all(g is None for g in dys):
                continue
            targets = [t for t in op.inputs if self.wants(t)]
            if targets:
                self._backward(op, [g for g in dys if g is not None], targets)
        return self.ops

    def _grad_tensor(self, op: Op, t: Tensor, suffix: str) -> Tensor:
        role = TensorRole.GRADIENT if t.role == TensorRole.WEIGHT else TensorRole.ACTIVATION
        return Tensor(f"{op.name}.bwd.{suffix}", t.shape, t.dtype, role, t.density)

    def _backward(self, op: Op, dys: list[Tensor], targets: list[Tensor]) -> None:
        kw = self._kw(op)
        dy = dys[0]
        k = op.kind
        if k == OpKind.GEMM:
            return self._gemm(op, dy, kw)
        if k in (OpKind.RESHAPE, OpKind.SLICE, OpKind.TRANSPOSE, OpKind.CONCAT):
            return self._layout(op, dy, kw)
        if k == OpKind.ALLREDUCE:
            g = self._emit(O.allreduce(f"{op.name}.bwd", dy, int(op.attr("ranks")), f"{op.name}.bwd.dx", **kw))
            return self._give(op.inputs[0], g)
        if k == OpKind.EMBEDDING:
            table = op.inputs[1]
            g = self._grad_tensor(op, table, "dw")
            self._emit(Op(f"{op.name}.bwd", OpKind.EMBEDDING, (dy, op.inputs[0]), (g,), float(dy.numel),
                          dy.nbytes + op.inputs[0].nbytes, dy.nbytes, **kw))
            return self._give(table, g)
        # norms, softmax, rotary, elementwise, reductions: one op over the same shapes
        out_numel = sum(t.numel for t in op.outputs)
        if op.kind == OpKind.ELEMENTWISE and len(op.outputs) == 1 and op.flops <= out_numel:
            return self._add_backward(op, dy, targets, kw)
        saved = tuple(t for t in op.inputs if t.role not in _NO_GRAD)
        grads = [self._grad_tensor(op, t, f"d{i}") for i, t in enumerate(targets)]
        self._emit(Op(f"{op.name}.bwd", op.kind, (*dys, *saved), tuple(grads), op.flops,
                      sum(t.nbytes for t in (*dys, *saved)), sum(g.nbytes for g in grads), **kw))
        for t, g in zip(targets, grads):
            self._give(t, g)

    def _add_backward(self, op: Op, dy: Tensor, targets: list[Tensor], kw: dict) -> None:
        """An add (residual, bias, position, ALiBi): the gradient passes through unchanged
        to same-shape activations; broadcast operands (biases, tables) get a reduction."""
        for i, t in enumerate(targets):
            if t.shape == dy.shape and t.role != TensorRole.WEIGHT:
                self._give(t, dy)
                continue
            g = self._grad_tensor(op, t, f"d{i}")
            self._emit(Op(f"{op.name}.bwd_d{i}", OpKind.REDUCE, (dy,), (g,), float(dy.numel), dy.nbytes,
                          g.nbytes, **kw))
            self._give(t, g)

    def _gemm(self, op: Op, dy: Tensor, kw: dict) -> None:
        a, b = op.inputs
        m, n, kk = (int(op.attr(x)) for x in ("m", "n", "k"))
        if self.wants(a):
            da = self._grad_tensor(op, a, "dx")
            b = self._weight_again(b)
            self._emit(Op(f"{op.name}.bwd_dx", OpKind.GEMM, (dy, b), (da,), op.flops, dy.nbytes + b.nbytes,
                          da.nbytes, attrs=(("m", m), ("n", kk), ("k", n)), **kw))
            self._give(a, da)
        if self.wants(b):
            db = self._grad_tensor(op, b, "dw" if b.role == TensorRole.WEIGHT else "db")
            self._emit(Op(f"{op.name}.bwd_d{'w' if b.role == TensorRole.WEIGHT else 'b'}", OpKind.GEMM,
                          (a, dy), (db,), op.flops, a.nbytes + dy.nbytes, db.nbytes,
                          attrs=(("m", kk), ("n", n), ("k", m)), **kw))
            self._give(b, db)

    def _weight_again(self, b: Tensor) -> Tensor:
        """QLoRA: the input-gradient GEMM dequantises its frozen NF4 weight once more
        (bitsandbytes' MatMul4Bit backward), rather than keeping the bf16 copy."""
        src = self.producer.get(b.name)
        if not self.redequantise or src is None or src.tag != DEQUANT_TAG:
            return b
        again = replace(src, name=src.name + ".bwd", outputs=(b.renamed(b.name + ".bwd"),))
        return self._emit(again)

    def _layout(self, op: Op, dy: Tensor, kw: dict) -> None:
        x = op.inputs[0]
        if op.kind == OpKind.RESHAPE:
            self._give(x, self._emit(O.reshape(f"{op.name}.bwd", dy, x.shape, f"{op.name}.bwd.dx", **kw)))
        elif op.kind == OpKind.TRANSPOSE:
            perm = op.attr("perm")
            inv = tuple(sorted(range(len(perm)), key=lambda i: perm[i]))
            self._give(x, self._emit(O.transpose(f"{op.name}.bwd", dy, inv, f"{op.name}.bwd.dx", **kw)))
        elif op.kind == OpKind.SLICE:
            self._give(x, dy, (int(op.attr("axis")), int(op.attr("start")), int(op.attr("stop"))))
        else:  # CONCAT: each input's gradient is a slice of dy
            axis, start = int(op.attr("axis")), 0
            for i, t in enumerate(op.inputs):
                stop = start + t.shape[axis]
                if self.wants(t):
                    self._give(t, self._emit(O.slice_(f"{op.name}.bwd{i}", dy, axis, start, stop,
                                                      f"{op.name}.bwd.d{i}", **kw)))
                start = stop


def _tiles(parts: list, t: Tensor) -> bool:
    axes = {p[0] for p, _ in parts}
    if len(axes) != 1:
        return False
    pos = 0
    for (axis, start, stop), _ in parts:
        if start != pos:
            return False
        pos = stop
    return pos == t.shape[parts[0][0][0]]


def _optimizer(fwd: list[Op], weight_grads: dict[str, list[Tensor]], bwd: _Backward) -> list[Op]:
    """Sum multi-use weight gradients, then one AdamW op per block over the weights that
    have gradients this step (trainable weights nobody read -- adapters of experts no
    token reached -- have no gradient, and PyTorch's AdamW skips them)."""
    owner: dict[str, Op] = {}
    for op in fwd:
        for t in op.inputs:
            if t.role == TensorRole.WEIGHT:
                owner.setdefault(t.name, op)
    ops: list[Op] = []
    groups: dict[str, list[tuple[Tensor, Tensor]]] = defaultdict(list)
    for name, grads in weight_grads.items():
        w, first = bwd.weights[name], owner[name]
        g = grads[0]
        if len(grads) > 1:
            g = Tensor(f"{name}.grad", w.shape, w.dtype, TensorRole.GRADIENT, w.density)
            ops.append(Op(f"{name}.grad_acc", OpKind.ELEMENTWISE, tuple(grads), (g,),
                          float(w.numel * w.density * (len(grads) - 1)), sum(x.nbytes for x in grads), g.nbytes,
                          layer=first.layer, tag=first.tag, block=first.block, attrs=(("pass", "backward"),)))
        groups[first.block].append((w, g))
    st = TensorRole.OPTIMIZER_STATE
    for block, pairs in groups.items():
        layer = next(op.layer for op in fwd if op.block == block)
        ins: list[Tensor] = []
        outs: list[Tensor] = []
        flops = 0.0
        for w, g in pairs:
            m = Tensor(f"{w.name}.adam_m", w.shape, DType.FP32, st, w.density)
            v = Tensor(f"{w.name}.adam_v", w.shape, DType.FP32, st, w.density)
            ins += [w, g, m, v]
            outs += [Tensor(f"{w.name}.updated", w.shape, w.dtype, TensorRole.WEIGHT, w.density),
                     m.renamed(f"{m.name}.updated"), v.renamed(f"{v.name}.updated")]
            flops += ADAM_FLOPS_PER_PARAM * w.numel * w.density
        name = f"{block}.optim" if block else "optim"
        ops.append(Op(name, OpKind.ELEMENTWISE, tuple(ins), tuple(outs), flops,
                      float(sum(t.nbytes for t in ins)), float(sum(t.nbytes for t in outs)),
                      layer=layer, tag="optim.adam", block=block, attrs=(("pass", "optimizer"),)))
    return ops
