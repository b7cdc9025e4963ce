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
    if op.kind == OpKind.RESHAPE:
        return True
    return op.kind == OpKind.TRANSPOSE and policy == FusionPolicy.FUSED


def dataflow_nodes(graph: OpGraph, policy: FusionPolicy) -> tuple[tuple[Node, ...], dict[str, tuple[str, ...]]]:
    """Real ops in topological order, and for each the real ops consuming its outputs."""
    producer: dict[str, str | None] = {}     # tensor name -> real producer (None = external)
    nodes: list[Node] = []
    for op in graph.ops:
        if is_view(op, policy):
            base = _resolve(op.inputs[0], producer)
            for t in op.outputs:
                producer[t.name] = base
            continue
        operands = []
        for t in op.inputs:
            src = _resolve(t, producer)
            nbytes = t.nbytes
            if op.kind == OpKind.EMBEDDING and t.role == TensorRole.WEIGHT:
                # a gather reads only the looked-up rows
                nbytes = max(0.0, op.bytes_read - sum(x.nbytes for x in op.inputs if x is not t))
            operands.append(Operand(t, src, float(nbytes)))
        for t in op.outputs:
            producer[t.name] = op.name
        persistent = any(t.role in (TensorRole.KV_CACHE, TensorRole.WEIGHT, TensorRole.OPTIMIZER_STATE)
                         for t in op.outputs)
        nodes.append(Node(op, tuple(operands), float(sum(t.nbytes for t in op.outputs)), persistent))
    consumers: dict[str, list[str]] = {n.name: [] for n in nodes}
    for n in nodes:
        for o in n.operands:
            if o.producer is not None and n.name not in consumers[o.producer]:
                consumers[o.producer].append(n.name)
    return tuple(nodes), {k: tuple(v) for k, v in consumers.items()}


def _resolve(t: Tensor, producer: dict[str, str | None]) -> str | None:
    if t.role in EXTERNAL_ROLES:
        return None
    return producer.get(t.name)
