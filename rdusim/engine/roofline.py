"""Roofline mode (``execution.ideal: true``): a step as the textbook roofline times it, on
every family alike.

With the switch on, a deployment's machine and stack are idealised
(:func:`rdusim.config.machine.idealised`: every efficiency 1, every latency, launch, floor
and host cost 0) and each step of one device (one TP rank) takes

    max(tensor FLOPs / peak rate, (weights + KV cache) bytes / HBM bandwidth)
      + its collectives on the ideal fabric (bandwidth terms only)

- tensor FLOPs: the step graph's matmuls (attention's two included), at the device's
  peak dense rate in the compute format (``native_rate``); vector work is taken as
  hidden under them;
- bytes: every weight the step reads (the embedding table only as the rows it gathers)
  and the KV cache it reads (the cache including the step's new tokens) and appends;
  activations stay on chip;
- collectives: each of the graph's all-reduces / all-gathers as the family's library
  runs it (:meth:`rdusim.engine.family.Family.collective`) on the idealised machine.

The steps' records are empty; the breakdown puts the roofline under "compute" or
"memory" (whichever bounds it) and the collectives under "collective". Every model run
reports its realistic time against this one (``ideal_latency_s``, ``realistic_over_ideal``).
"""

from __future__ import annotations

from dataclasses import dataclass

from rdusim.config.deployment import Deployment
from rdusim.engine.breakdown import BREAKDOWN_KEYS, frozen
from rdusim.engine.collectives import CollectiveOp
from rdusim.engine.families import family
from rdusim.engine.family import BenchGraphs, Memo
from rdusim.engine.step import StepResult
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.opgraph import OpGraph
from rdusim.graph.ops import OpKind
from rdusim.graph.phase import Phase
from rdusim.graph.tensor import DType, TensorRole

TEMPLATE_LAYERS = 3            # layers 0, 1, 2: layer 1 stands for every middle layer
_READ = (TensorRole.WEIGHT, TensorRole.KV_CACHE)


@dataclass(frozen=True)
class RooflineCounts:
    """What one device's step computes and moves, for the roofline."""

    tensor_flops: float
    hbm_bytes: float
    collectives: tuple[tuple[CollectiveOp, int, float, int], ...]    # (op, ranks, message bytes, times)


def step_counts(graph: OpGraph, repeat_layer: int | None = None, times: int = 1) -> RooflineCounts:
    """The roofline counts of ``graph``; ops of layer ``repeat_layer`` count ``times`` times."""
    flops = nbytes = 0.0
    colls: dict[tuple[CollectiveOp, int, float], int] = {}
    prefix = f"L{repeat_layer}." if repeat_layer is not None else None
    for op in graph.ops:
        n = times if prefix is not None and op.name.startswith(prefix) else 1
        if op.kind.is_collective:
            kind = CollectiveOp.ALLREDUCE if op.kind == OpKind.ALLREDUCE else CollectiveOp.ALLGATHER
            key = (kind, int(op.attr("ranks")), float(op.attr("message_bytes")))
            colls[key] = colls.get(key, 0) + n
            continue
        if op.kind == OpKind.GEMM:
            flops += n * op.flops
        if op.kind == OpKind.EMBEDDING:          # the rows it gathers, not the table
            nbytes += n * sum(t.nbytes for t in op.outputs)
            continue
        nbytes += n * (sum(t.nbytes for t in op.inputs if t.role in _READ)
                       + sum(t.nbytes for t in op.outputs if t.role == TensorRole.KV_CACHE))
    return RooflineCounts(flops, nbytes, tuple((k, r, m, c) for (k, r, m), c in colls.items()))


def model_counts(dep: Deployment, phase: Phase, batch: int, seq: int, new_tokens: int = 1) -> RooflineCounts:
    """The counts of a step of the deployment's whole model, from its first layers with the
    middle one repeated (the same sums as the whole graph's)."""
    cfg, layers = dep.model, dep.model.num_hidden_layers
    if layers > TEMPLATE_LAYERS:
        head = build_model_graph(cfg, phase, batch, seq, tp=dep.tp, layers=TEMPLATE_LAYERS, new_tokens=new_tokens)
        return step_counts(head, repeat_layer=1, times=layers - TEMPLATE_LAYERS + 1)
    return step_counts(build_model_graph(cfg, phase, batch, seq, tp=dep.tp, new_tokens=new_tokens))


def roofline_step(dep: Deployment, phase: Phase, batch: int, seq: int, host_s: float, memo: Memo,
                  new_tokens: int = 1) -> StepResult:
    """One step of ``dep`` (its machine already idealised) as the roofline times it; ``host_s``
    is added as the host's part (0 once the stack is idealised)."""
    counts = memo(("roofline", dep.model, phase, batch, seq, dep.tp, new_tokens),
                  lambda: model_counts(dep, phase, batch, seq, new_tokens))
    arch = dep.arch
    peak = arch.native_rate(dep.model.fmt.compute)
    compute = counts.tensor_flops / peak
    memory = counts.hbm_bytes / arch.device_hbm.bandwidth_bytes_per_s
    fam = family(arch)
    collective = sum(c * fam.collective(arch, op, ranks, m).time_s for op, ranks, m, c in counts.collectives)
    parts = dict.fromkeys(BREAKDOWN_KEYS, 0.0)
    parts["compute" if compute >= memory else "memory"] = max(compute, memory)
    parts["collective"] = collective
    parts["host"] = host_s
    time = max(compute, memory) + collective + host_s
    util = {"hbm_bw": memory / time if time else 0.0}
    return StepResult(time_s=time, kernels=0, flops=counts.tensor_flops,
                      bytes_by_tier=frozen({"hbm": counts.hbm_bytes}), breakdown_s=frozen(parts), util=frozen(util))


@dataclass(frozen=True)
class GraphRoofline:
    """A whole step graph as the textbook roofline bounds it on one device: every FLOP at
    the device's peak rate in the graph's compute format, and only its compulsory off-chip
    traffic (:func:`rdusim.graph.opgraph.boundary_bytes`: the graph run as one kernel whose
    intermediates stay on chip -- weights, KV cache, inputs and outputs) at peak HBM
    bandwidth; no launch, latency or collective."""

    flops: float
    hbm_bytes: float
    dtype: DType

    def time_s(self, arch) -> float:
        rate = arch.native_rate(self.dtype) or arch.native_rate(DType.BF16)
        return max(self.flops / rate, self.hbm_bytes / arch.device_hbm.bandwidth_bytes_per_s)


def _compute_dtype(graph: OpGraph) -> DType:
    gemm = next((op for op in graph.ops if op.kind == OpKind.GEMM), None)
    return (gemm or graph.ops[0]).inputs[0].dtype


def _layer_bytes(graph: OpGraph, prefix: str) -> float:
    """What one decoder layer (the ops named ``prefix``...) adds to its graph's compulsory
    off-chip bytes: each tensor its ops read that no op of the graph produces (weights,
    optimizer state, KV cache), once, and each tensor they produce that no op of the graph
    reads or that is KV-cache state (updated weights and optimizer state, appended KV)."""
    produced = {t.name for op in graph.ops for t in op.outputs}
    read = {t.name for op in graph.ops for t in op.inputs}
    layer = [op for op in graph.ops if op.name.startswith(prefix)]
    outside = {t.name: t.nbytes for op in layer for t in op.inputs if t.name not in produced}
    written = {t.name: t.nbytes for op in layer for t in op.outputs
               if t.name not in read or t.role == TensorRole.KV_CACHE}
    return float(sum(outside.values()) + sum(written.values()))


def bench_roofline(graphs: BenchGraphs) -> GraphRoofline:
    """The roofline of a fusion benchmark's whole step: from its first three layers with the
    middle one counted once per further layer when the model is deeper (the same sums as the
    whole graph's, without building it), else the whole graph."""
    if graphs.layers > TEMPLATE_LAYERS:
        g = graphs.cut(TEMPLATE_LAYERS)
        more = graphs.layers - TEMPLATE_LAYERS
        flops = g.totals.flops + more * sum(op.flops for op in g.ops if op.name.startswith("L1."))
        return GraphRoofline(flops, g.boundary_bytes + more * _layer_bytes(g, "L1."), _compute_dtype(g))
    g = graphs.whole()
    return GraphRoofline(g.totals.flops, g.boundary_bytes, _compute_dtype(g))
