"""Typed operators. Each constructor checks shapes and computes FLOPs and bytes.

FLOP conventions (stated once, used everywhere): a multiply-add is 2 FLOPs;
GEMM = 2*M*N*K per batch (times weight density when the weight is sparse);
elementwise ops cost ``flops_per_element`` per output element; RMSNorm 4,
LayerNorm 7, softmax 5, rotary 3 per element; activations per ACT_FLOPS;
transposes, concatenations and embedding gathers move bytes only; reshapes and
slices are views (no bytes until a kernel boundary materialises them); an
all-reduce of n elements over p ranks does (p-1)/p*n additions per rank.

Bytes: every op reads each input tensor once and writes each output once
(``Tensor.nbytes``, so sparse weights count non-zeros plus indices), except
views (0), embedding gathers (only the looked-up rows) and KV-cache appends.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from rdusim.graph.tensor import DType, Tensor, TensorRole


class OpKind(enum.Enum):
    GEMM = "gemm"
    ELEMENTWISE = "elementwise"
    NORM = "norm"
    SOFTMAX = "softmax"
    ROTARY = "rotary"
    TRANSPOSE = "transpose"
    RESHAPE = "reshape"
    SLICE = "slice"            # a view of a contiguous sub-range along one axis
    CONCAT = "concat"          # join tensors along one axis (a copy)
    EMBEDDING = "embedding"
    REDUCE = "reduce"          # reductions to a smaller tensor (loss, bias grads)
    ALLREDUCE = "allreduce"
    ALLGATHER = "allgather"

    @property
    def is_collective(self) -> bool:
        return self in (OpKind.ALLREDUCE, OpKind.ALLGATHER)

    @property
    def is_layout(self) -> bool:
        """Pure data movement: an access pattern on a stage buffer when fused."""
        return self in (OpKind.TRANSPOSE, OpKind.RESHAPE, OpKind.SLICE, OpKind.CONCAT)


class ShapeError(ValueError):
    """Shapes of an op's operands do not match."""


@dataclass(frozen=True)
class Op:
    name: str
    kind: OpKind
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    flops: float
    bytes_read: float
    bytes_written: float
    layer: int = -1            # decoder layer index, -1 outside layers
    tag: str = ""              # role in the model, e.g. "attn.qkv", "mlp.down", "attn.score"
    attrs: tuple[tuple[str, object], ...] = field(default=())
    block: str = ""            # repeated unit it belongs to: "L3" (decoder layer 3), "vision.L3", "" outside

    @property
    def bytes(self) -> float:
        return self.bytes_read + self.bytes_written

    @property
    def oi_flops_per_byte(self) -> float:
        return self.flops / self.bytes if self.bytes else math.inf

    def attr(self, key: str, default: object = None) -> object:
        return dict(self.attrs).get(key, default)

    @property
    def weight_bytes(self) -> float:
        return sum(t.nbytes for t in self.inputs if t.role == TensorRole.WEIGHT)


def _tensor_bytes(ts) -> float:
    return float(sum(t.nbytes for t in ts))


def _mk(name, kind, inputs, outputs, flops, **kw) -> Op:
    return Op(name, kind, tuple(inputs), tuple(outputs), float(flops),
              kw.pop("bytes_read", _tensor_bytes(inputs)),
              kw.pop("bytes_written", _tensor_bytes(outputs)), **kw)


def gemm(name: str, a: Tensor, b: Tensor, out: str, *, transpose_b: bool = False,
         out_dtype: DType | None = None, **kw) -> Op:
    """out[..., M, N] = a[..., M, K] @ b[..., K, N] (b may be 2-D and broadcast, or transposed)."""
    if len(a.shape) < 2 or len(b.shape) < 2:
        raise ShapeError(f"{name}: gemm operands need >= 2 dims, got {a.shape} and {b.shape}")
    m, k = a.shape[-2], a.shape[-1]
    kb, n = (b.shape[-1], b.shape[-2]) if transpose_b else (b.shape[-2], b.shape[-1])
    if k != kb:
        raise ShapeError(f"{name}: inner dimensions differ: {a.name}{list(a.shape)} @ "
                         f"{b.name}{list(b.shape)}{'^T' if transpose_b else ''} ({k} vs {kb})")
    batch_a, batch_b = a.shape[:-2], b.shape[:-2]
    if batch_b and batch_b != batch_a:
        raise ShapeError(f"{name}: batch dimensions differ: {batch_a} vs {batch_b}")
    batch = math.prod(batch_a)
    density = min(a.density, b.density)
    y = Tensor(out, (*batch_a, m, n), out_dtype or a.dtype)
    return _mk(name, OpKind.GEMM, (a, b), (y,), 2.0 * batch * m * n * k * density,
               attrs=(("m", batch * m), ("n", n), ("k", k), ("batch", batch)), **kw)


def linear(name: str, x: Tensor, w: Tensor, out: str, *, transpose_w: bool = False,
           out_dtype: DType | None = None, **kw) -> Op:
    """x[..., K] @ w[K, N] (or w[N, K]^T, e.g. an LM head tied to the embedding table):
    a GEMM whose M is every leading dimension of x; its output is at ``out_dtype`` (default
    x's: a quantised GEMM writes the model dtype, its epilogue applying the scales)."""
    if len(w.shape) != 2:
        raise ShapeError(f"{name}: weight must be 2-D, got {w.shape}")
    k, n = (w.shape[1], w.shape[0]) if transpose_w else w.shape
    if x.shape[-1] != k:
        raise ShapeError(f"{name}: {x.name}{list(x.shape)} @ {w.name}{list(w.shape)}"
                         f"{'^T' if transpose_w else ''}: {x.shape[-1]} != {k}")
    lead = x.shape[:-1]
    m = math.prod(lead)
    y = Tensor(out, (*lead, n), out_dtype or x.dtype)
    return _mk(name, OpKind.GEMM, (x, w), (y,), 2.0 * m * n * k * w.density,
               attrs=(("m", m), ("n", n), ("k", k), ("batch", 1)), **kw)


def elementwise(name: str, inputs: list[Tensor], out: str, flops_per_element: float = 1.0,
                out_shape: tuple[int, ...] | None = None, **kw) -> Op:
    """Same-shape elementwise op; operands may broadcast over leading dims (bias, twiddles)."""
    shape = out_shape or max((t.shape for t in inputs), key=math.prod)
    for t in inputs:
        if t.shape != shape[len(shape) - len(t.shape):]:
            raise ShapeError(f"{name}: operand {t.name}{list(t.shape)} does not broadcast to {list(shape)}")
    y = Tensor(out, tuple(shape), inputs[0].dtype)
    return _mk(name, OpKind.ELEMENTWISE, inputs, (y,), flops_per_element * y.numel, **kw)


# FLOPs per element of each activation function (exp counted as 1, as the other ops)
ACT_FLOPS = {"silu": 4.0,        # x * sigmoid(x): neg, exp, add, div
             "gelu": 8.0,        # tanh approximation: cube, fma, scale, tanh, add, mul, half
             "quick_gelu": 5.0,  # x * sigmoid(1.702 x): scale + silu
             "relu": 1.0}


def glu(name: str, x: Tensor, out: str, act_flops: float = 4.0, **kw) -> Op:
    """Gated unit: split the last dim in halves, act(gate) * up. Output is half as wide."""
    if x.shape[-1] % 2:
        raise ShapeError(f"{name}: gated input {x.name}{list(x.shape)} needs an even last dimension")
    y = Tensor(out, (*x.shape[:-1], x.shape[-1] // 2), x.dtype)
    return _mk(name, OpKind.ELEMENTWISE, (x,), (y,), (act_flops + 1) * y.numel, **kw)


def norm(name: str, x: Tensor, params: list[Tensor], out: str, *, rms: bool = True, **kw) -> Op:
    for p in params:
        if p.shape != (x.shape[-1],):
            raise ShapeError(f"{name}: norm parameter {p.name}{list(p.shape)} != [{x.shape[-1]}]")
    y = Tensor(out, x.shape, x.dtype)
    return _mk(name, OpKind.NORM, (x, *params), (y,), (4 if rms else 7) * x.numel,
               attrs=(("rms", rms),), **kw)


def softmax(name: str, x: Tensor, out: str, **kw) -> Op:
    y = Tensor(out, x.shape, x.dtype)
    return _mk(name, OpKind.SOFTMAX, (x,), (y,), 5 * x.numel, **kw)


def rotary(name: str, x: Tensor, out: str, **kw) -> Op:
    y = Tensor(out, x.shape, x.dtype)
    return _mk(name, OpKind.ROTARY, (x,), (y,), 3 * x.numel, **kw)


def transpose(name: str, x: Tensor, perm: tuple[int, ...], out: str, **kw) -> Op:
    if sorted(perm) != list(range(len(x.shape))):
        raise ShapeError(f"{name}: permutation {perm} does not fit rank {len(x.shape)}")
    y = Tensor(out, tuple(x.shape[i] for i in perm), x.dtype)
    return _mk(name, OpKind.TRANSPOSE, (x,), (y,), 0, attrs=(("perm", perm),), **kw)


def reshape(name: str, x: Tensor, shape: tuple[int, ...], out: str, **kw) -> Op:
    if math.prod(shape) != x.numel:
        raise ShapeError(f"{name}: cannot reshape {x.name}{list(x.shape)} ({x.numel} elements) "
                         f"to {list(shape)} ({math.prod(shape)} elements)")
    y = Tensor(out, tuple(shape), x.dtype)
    # a view: no bytes move unless a kernel boundary materialises it
    return _mk(name, OpKind.RESHAPE, (x,), (y,), 0, bytes_read=0.0, bytes_written=0.0, **kw)


def slice_(name: str, x: Tensor, axis: int, start: int, stop: int, out: str, **kw) -> Op:
    """x[..., start:stop, ...] along ``axis``: a view, no bytes move (like reshape)."""
    rank = len(x.shape)
    ax = axis % rank if -rank <= axis < rank else None
    if ax is None:
        raise ShapeError(f"{name}: axis {axis} out of range for {x.name}{list(x.shape)}")
    if not 0 <= start < stop <= x.shape[ax]:
        raise ShapeError(f"{name}: slice {start}:{stop} out of range for axis {axis} of "
                         f"{x.name}{list(x.shape)}")
    shape = list(x.shape)
    shape[ax] = stop - start
    y = Tensor(out, tuple(shape), x.dtype)
    return _mk(name, OpKind.SLICE, (x,), (y,), 0, bytes_read=0.0, bytes_written=0.0,
               attrs=(("axis", ax), ("start", start), ("stop", stop)), **kw)


def concat(name: str, xs: list[Tensor], axis: int, out: str, **kw) -> Op:
    """Join tensors along ``axis`` (a copy: reads every part, writes the whole)."""
    if not xs:
        raise ShapeError(f"{name}: concat needs at least one input")
    rank = len(xs[0].shape)
    ax = axis % rank if -rank <= axis < rank else None
    if ax is None:
        raise ShapeError(f"{name}: axis {axis} out of range for rank {rank}")
    for t in xs:
        if len(t.shape) != rank or any(t.shape[i] != xs[0].shape[i] for i in range(rank) if i != ax):
            raise ShapeError(f"{name}: {t.name}{list(t.shape)} does not match {xs[0].name}"
                             f"{list(xs[0].shape)} outside axis {axis}")
        if t.dtype != xs[0].dtype:
            raise ShapeError(f"{name}: dtype {t.dtype.value} of {t.name} != {xs[0].dtype.value}")
    shape = list(xs[0].shape)
    shape[ax] = sum(t.shape[ax] for t in xs)
    y = Tensor(out, tuple(shape), xs[0].dtype)
    return _mk(name, OpKind.CONCAT, xs, (y,), 0, attrs=(("axis", ax),), **kw)


def embedding(name: str, ids: Tensor, table: Tensor, out: str, **kw) -> Op:
    if len(table.shape) != 2:
        raise ShapeError(f"{name}: embedding table must be 2-D, got {table.shape}")
    y = Tensor(out, (*ids.shape, table.shape[1]), table.dtype)
    # a gather reads only the looked-up rows, not the whole table
    return _mk(name, OpKind.EMBEDDING, (ids, table), (y,), 0,
               bytes_read=ids.nbytes + y.nbytes, **kw)


def reduce(name: str, x: Tensor, out_shape: tuple[int, ...], out: str, **kw) -> Op:
    y = Tensor(out, tuple(out_shape), x.dtype)
    if y.numel > x.numel:
        raise ShapeError(f"{name}: a reduction of {x.name}{list(x.shape)} cannot grow to {list(out_shape)}")
    return _mk(name, OpKind.REDUCE, (x,), (y,), x.numel, **kw)


def _check_ranks(name: str, ranks: int) -> None:
    if isinstance(ranks, bool) or not isinstance(ranks, int) or ranks < 1:
        raise ShapeError(f"{name}: ranks must be a positive integer, got {ranks!r}")


def allreduce(name: str, x: Tensor, ranks: int, out: str, **kw) -> Op:
    _check_ranks(name, ranks)
    y = Tensor(out, x.shape, x.dtype)
    return _mk(name, OpKind.ALLREDUCE, (x,), (y,), x.numel * (ranks - 1) / ranks,
               attrs=(("ranks", ranks), ("message_bytes", x.nbytes)), **kw)


def allgather(name: str, x: Tensor, ranks: int, out: str, axis: int = -1, **kw) -> Op:
    _check_ranks(name, ranks)
    if not -len(x.shape) <= axis < len(x.shape):
        raise ShapeError(f"{name}: axis {axis} out of range for {x.name}{list(x.shape)}")
    shape = list(x.shape)
    shape[axis] *= ranks
    y = Tensor(out, tuple(shape), x.dtype)
    return _mk(name, OpKind.ALLGATHER, (x,), (y,), 0,
               attrs=(("ranks", ranks), ("message_bytes", y.nbytes)), **kw)
