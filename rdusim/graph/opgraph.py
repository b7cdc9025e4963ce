"""OpGraph: a validated DAG of ops, connected by the tensors they pass (a networkx view on demand)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

from rdusim.derived import derived
from rdusim.errors import InputError
from rdusim.graph.ops import Op, OpKind
from rdusim.graph.toposort import lexicographic_order
from rdusim.graph.tensor import EXTERNAL_ROLES, Tensor, TensorRole

if TYPE_CHECKING:
    import networkx as nx


@dataclass(frozen=True)
class Totals:
    flops: float
    bytes_read: float
    bytes_written: float

    @property
    def bytes(self) -> float:
        return self.bytes_read + self.bytes_written

    @property
    def oi_flops_per_byte(self) -> float:
        return self.flops / self.bytes if self.bytes else float("inf")


class OpGraph:
    """Ops in a DAG. Construction checks: unique names, every activation produced by
    exactly one op with the shape and dtype its consumers expect, no cycles."""

    def __init__(self, name: str, ops: Iterable[Op], *, source: str = "<graph>",
                 idle_weights: Iterable[Tensor] = ()):
        self.name = name
        self.source = source
        # weights the rank holds that no op of this step reads (MoE experts not routed to)
        self._idle = tuple(idle_weights)
        ops = list(ops)
        by_name: dict[str, Op] = {}
        producers: dict[str, tuple[int, Op, Tensor]] = {}
        for i, op in enumerate(ops):
            if op.name in by_name:
                raise InputError(source, f"ops.{op.name}", "unique op names", "a duplicate")
            by_name[op.name] = op
            for t in op.outputs:
                if t.name in producers:
                    raise InputError(source, f"ops.{op.name}.outputs.{t.name}",
                                     "each tensor produced once", f"also produced by {producers[t.name][1].name}")
                producers[t.name] = (i, op, t)
        in_order = True     # every producer before its consumers: the given order is topological
        edges = []
        for i, op in enumerate(ops):
            for t in op.inputs:
                if t.role in EXTERNAL_ROLES:
                    continue
                if t.name not in producers:
                    raise InputError(source, f"ops.{op.name}.inputs.{t.name}",
                                     "an activation produced by an op of the graph", "no producer")
                j, src, made = producers[t.name]
                if made.shape != t.shape or made.dtype != t.dtype:
                    raise InputError(source, f"ops.{op.name}.inputs.{t.name}",
                                     f"shape {list(made.shape)} {made.dtype.value} as produced by {src.name}",
                                     f"{list(t.shape)} {t.dtype.value}")
                in_order = in_order and j < i
                edges.append((src.name, op.name, {"tensor": t.name, "nbytes": t.nbytes}))
        self._by_name = by_name
        self._listed = tuple(ops)
        self._edges = tuple(edges)
        if in_order:
            self._ops: tuple[Op, ...] = tuple(ops)
            return
        names = [op.name for op in ops]
        order = lexicographic_order(names, ((u, v) for u, v, _ in edges), {n: i for i, n in enumerate(names)})
        if order is None:
            import networkx as nx

            cycle = nx.find_cycle(self._g)
            raise InputError(source, "ops", "an acyclic graph",
                             "a cycle " + " -> ".join(e[0] for e in cycle) + f" -> {cycle[0][0]}")
        self._ops = tuple(by_name[n] for n in order)

    @derived
    def _g(self) -> "nx.DiGraph":
        """The networkx DiGraph (nodes carry ``op`` and ``index``, edges ``tensor`` and
        ``nbytes``), built the first time something asks for it."""
        import networkx as nx

        g = nx.DiGraph()
        for i, op in enumerate(self._listed):
            g.add_node(op.name, op=op, index=i)
        g.add_edges_from(self._edges)
        return g

    # ---- read-only views ----
    @property
    def ops(self) -> tuple[Op, ...]:
        """Ops in a topological order (the builder's order where it is one)."""
        return self._ops

    @property
    def nx(self) -> "nx.DiGraph":
        return self._g.copy(as_view=True)

    def op(self, name: str) -> Op:
        return self._by_name[name]

    def successors(self, name: str) -> list[str]:
        return list(self._g.successors(name))

    def predecessors(self, name: str) -> list[str]:
        return list(self._g.predecessors(name))

    def __len__(self) -> int:
        return len(self._ops)

    @derived
    def totals(self) -> Totals:
        return subgraph_totals(self._ops)

    @derived
    def weights(self) -> dict[str, Tensor]:
        """Every weight the rank holds: those the ops read, then the idle ones."""
        out: dict[str, Tensor] = {}
        for op in self._ops:
            for t in op.inputs:
                if t.role == TensorRole.WEIGHT:
                    out.setdefault(t.name, t)
        for t in self._idle:
            out.setdefault(t.name, t)
        return out

    @property
    def idle_weights(self) -> tuple[Tensor, ...]:
        return self._idle

    @property
    def params(self) -> int:
        """Parameters held by this graph (unique weight tensors; dense element count)."""
        return sum(t.numel for t in self.weights.values())

    @property
    def param_bytes(self) -> float:
        """Bytes of the weights held (sparse weights: non-zeros plus indices)."""
        return float(sum(t.nbytes for t in self.weights.values()))

    @property
    def boundary_bytes(self) -> float:
        """Bytes that cross the boundary if the whole graph ran as one fused kernel."""
        return boundary_bytes(self._ops)

    @derived
    def kv_cache(self) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for op in self._ops:
            for t in (*op.inputs, *op.outputs):
                if t.role == TensorRole.KV_CACHE:
                    out.setdefault(t.name, t)
        return out


def subgraph_totals(ops: Sequence[Op]) -> Totals:
    return Totals(sum(o.flops for o in ops), sum(o.bytes_read for o in ops),
                  sum(o.bytes_written for o in ops))


def boundary_bytes(ops: Sequence[Op], consumed_outside: Iterable[str] = ()) -> float:
    """Off-chip bytes of ``ops`` run as one fused kernel whose intermediates stay on chip.

    Counted once per tensor: every tensor read but not produced inside (graph inputs,
    weights, constants, KV cache, activations from outside), plus every tensor produced
    inside that no op inside reads, is named in ``consumed_outside``, or is KV-cache
    state (the appended entries). Embedding tables count only the rows gathered."""
    produced: dict[str, Tensor] = {}
    read_inside: set[str] = set()
    for op in ops:
        for t in op.outputs:
            produced[t.name] = t
    total = 0.0
    seen: set[str] = set()
    for op in ops:
        for t in op.inputs:
            read_inside.add(t.name)
            if t.name in produced or t.name in seen:
                continue
            seen.add(t.name)
            if op.kind == OpKind.EMBEDDING and t.role == TensorRole.WEIGHT:
                total += op.bytes_read - sum(x.nbytes for x in op.inputs if x is not t)  # rows gathered
            else:
                total += t.nbytes
    outside = set(consumed_outside)
    for name, t in produced.items():
        if name not in read_inside or name in outside or t.role == TensorRole.KV_CACHE:
            total += t.nbytes
    return total


def unfused_oi(ops: Sequence[Op]) -> float:
    """Operational intensity with every op its own kernel: FLOPs / sum of every op's bytes."""
    return subgraph_totals(ops).oi_flops_per_byte


def fused_oi(ops: Sequence[Op], consumed_outside: Iterable[str] = ()) -> float:
    """Operational intensity of ``ops`` fused: FLOPs / :func:`boundary_bytes`."""
    moved = boundary_bytes(ops, consumed_outside)
    flops = sum(o.flops for o in ops)
    return flops / moved if moved else float("inf")
