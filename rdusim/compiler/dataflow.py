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


# a tensor seen through views: the (source tensor, real producer or None) parts it is made of
_Parts = tuple[tuple[Tensor, "str | None"], ...]


def dataflow_nodes(graph: OpGraph, policy: FusionPolicy) -> tuple[tuple[Node, ...], dict[str, tuple[str, ...]]]:
    """Real ops in topological order, and for each the real ops consuming its outputs."""
    parts: dict[str, _Parts] = {}
    nodes: list[Node] = []
    for op in graph.ops:
        if is_view(op, policy):
            joined = tuple(p for t in op.inputs for p in _parts(t, parts))
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
            whole = sum(src.nbytes for src, _ in ps) or 1.0
            for src, prod in ps:
                share = nbytes * src.nbytes / whole if len(ps) > 1 else nbytes
                operands.append(Operand(src if prod is None else t, prod, float(share)))
        for t in op.outputs:
            parts[t.name] = ((t, op.name),)
        persistent = any(t.role in (TensorRole.KV_CACHE, TensorRole.WEIGHT, TensorRole.OPTIMIZER_STATE)
                         for t in op.outputs)
        nodes.append(Node(op, tuple(operands), float(sum(t.nbytes for t in op.outputs)), persistent))
    consumers: dict[str, list[str]] = {n.name: [] for n in nodes}
    for n in nodes:
        for o in n.operands:
            if o.producer is not None and n.name not in consumers[o.producer]:
                consumers[o.producer].append(n.name)
    return tuple(nodes), {k: tuple(v) for k, v in consumers.items()}


def _parts(t: Tensor, parts: dict[str, _Parts]) -> _Parts:
    if t.role in EXTERNAL_ROLES or t.name not in parts:
        return ((t, None),)
    return parts[t.name]
