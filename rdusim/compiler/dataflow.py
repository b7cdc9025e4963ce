"""The graph as the compiler sees it: real operators with their operands resolved.

Reshapes are always views (no op, no bytes). Under streaming fusion a transpose is an
access pattern on a stage buffer, so it is a view too; unfused, it is a real pass over
memory (read + write). Each remaining op becomes a :class:`Node` whose operands name
the real op that produced them (through any chain of views) or ``None`` when the
operand enters from outside the graph (weights, KV cache, inputs, constants).
"""

from __future__ import annotations

from dataclasses import dataclass

from rdusim.config.policy import FusionPolicy
from rdusim.graph.opgraph import OpGraph
from rdusim.graph.ops import Op, OpKind
from rdusim.graph.tensor import EXTERNAL_ROLES, Tensor, TensorRole


@dataclass(frozen=True)
class Operand:
    tensor: Tensor
    producer: str | None     # real producing op, or None if the tensor comes from outside
    nbytes: float            # bytes this op reads of it
    block_bytes: float = 0.0  # smallest tile the access pattern allows (a transpose's block)


@dataclass(frozen=True)
class Node:
    op: Op
    operands: tuple[Operand, ...]
    out_bytes: float
    persistent_out: bool     # writes state that outlives the step (KV cache, weights, optimizer)

    @property
    def name(self) -> str:
        return self.op.name

    @property
    def layer(self) -> int:
        return self.op.layer


def is_view(op: Op, policy: FusionPolicy) -> bool:
    """Reshapes and slices are views always; transposes and concats are access patterns
    on stage buffers under streaming fusion, real passes over memory when unfused."""
    if op.kind in (OpKind.RESHAPE, OpKind.SLICE):
        return True
    return op.kind.is_layout and policy == FusionPolicy.FUSED


# a tensor seen through views: the (source tensor, real producer or None, block bytes) parts
_Parts = tuple[tuple[Tensor, "str | None", float], ...]


def transpose_block_bytes(op: Op) -> float:
    """Bytes a stage buffer must hold for a transpose to be an access pattern.

    The consumer works on rows along the new last axis; rows are independent, so it can
    take them in the producer's order, but each row gathers the new last axis, which
    the producer laid out at ``perm[-1]``: a block spanning that axis and every axis
    inside it must be buffered (a last-axis-preserving transpose needs one row)."""
    perm = op.attr("perm")
    x = op.inputs[0]
    if perm is None:
        return 0.0
    inner = 1
    for d in x.shape[perm[-1]:]:
        inner *= d
    return float(inner * x.dtype.nbytes)


def dataflow_nodes(graph: OpGraph, policy: FusionPolicy) -> tuple[tuple[Node, ...], dict[str, tuple[str, ...]]]:
    """Real ops in topological order, and for each the real ops consuming its outputs."""
    parts: dict[str, _Parts] = {}
    nodes: list[Node] = []
    for op in graph.ops:
        if is_view(op, policy):
            joined = tuple(p for t in op.inputs for p in _parts(t, parts))
            if op.kind == OpKind.TRANSPOSE:
                block = transpose_block_bytes(op)
                joined = tuple((t, prod, max(b, block)) for t, prod, b in joined)
            for t in op.outputs:
                parts[t.name] = joined
            continue
        operands = []
        for t in op.inputs:
            nbytes = t.nbytes
            if op.kind == OpKind.EMBEDDING and t.role == TensorRole.WEIGHT:
                # a gather reads only the looked-up rows
                nbytes = max(0.0, op.bytes_read - sum(x.nbytes for x in op.inputs if x is not t))
            ps = _parts(t, parts)
            whole = sum(src.nbytes for src, _, _ in ps) or 1.0
            for src, prod, block in ps:
                share = nbytes * src.nbytes / whole if len(ps) > 1 else nbytes
                operands.append(Operand(src if prod is None else t, prod, float(share), min(block, share)))
        for t in op.outputs:
            parts[t.name] = ((t, op.name, 0.0),)
        persistent = any(t.role in (TensorRole.KV_CACHE, TensorRole.WEIGHT, TensorRole.OPTIMIZER_STATE)
                         for t in op.outputs)
        nodes.append(Node(op, tuple(operands), float(sum(t.nbytes for t in op.outputs)), persistent))
    consumers: dict[str, dict[str, None]] = {n.op.name: {} for n in nodes}
    for n in nodes:
        name = n.op.name
        for o in n.operands:
            if o.producer is not None:
                consumers[o.producer][name] = None
    return tuple(nodes), {k: tuple(v) for k, v in consumers.items()}


def _parts(t: Tensor, parts: dict[str, _Parts]) -> _Parts:
    if t.role in EXTERNAL_ROLES or t.name not in parts:
        return ((t, None, 0.0),)
    return parts[t.name]
