"""Pipeline parallelism across the nodes of a cluster, tensor parallel within and across nodes.

A model of L decoder layers is cut into S stages of L/S layers, each on ``tp`` sockets/GPUs:
one node when ``tp`` is at most a node's devices (its all-reduces over the node's links), or
``tp / devices_per_node`` whole nodes when it is more (tensor parallel across nodes: each
all-reduce runs hierarchically, the node's own all-reduce plus a ring over the NICs,
:mod:`rdusim.engine.collectives_cluster`, and the step's kernel records carry that
inter-node phase as ``inter_node_s``). S = 1 is tensor parallelism alone. A batch of B sequences is split into M
micro-batches of B/M; micro-batch m's activations go from stage s to s+1 over the network
(:meth:`ClusterSpec.send_s`: every TP rank sends its 1/tp share at once on a rail-optimised
fabric).

The schedule (:func:`schedule`) is exact list scheduling, FIFO at every stage: micro-batch
m of iteration j starts on stage s when stage s is free and the micro-batch has arrived from
stage s-1 (stage 0: when its previous iteration left the last stage, i.e. the previous token
is known). One iteration with equal stages and no transfer takes (M + S - 1) t and every
stage idles a fraction (S-1)/(M+S-1) of it (the bubble); over many decode iterations the
bubble is paid once when M >= S.

Each stage is timed by the step interface as the slowest one, the last: its L/S layers and
the LM head (the first stage's embedding gather is counted in it too, negligible).
Memory per device, by the one rule of :mod:`rdusim.memory`: the stage's weights, its layers'
KV cache for the whole batch and the workspace.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional, Sequence

from rdusim.config.cluster import ClusterSpec
from rdusim.config.deployment import Deployment
from rdusim.cache import RunCache
from rdusim.engine.collectives import CollectiveOp
from rdusim.engine.families import family
from rdusim.engine.collectives_cluster import SpanningCost
from rdusim.engine.stepper import StepModel
from rdusim.graph.phase import Phase
from rdusim.memory import MemoryNeed, device_memory


@dataclass(frozen=True)
class Schedule:
    makespan_s: float
    busy_s: tuple[float, ...]          # per stage

    @property
    def bubble(self) -> float:
        """Fraction of stage time spent idle over the makespan (mean over stages)."""
        if self.makespan_s <= 0:
            return 0.0
        return 1.0 - sum(self.busy_s) / (len(self.busy_s) * self.makespan_s)


def schedule(stage_s: Sequence[Sequence[float]], transfer_s: float, microbatches: int) -> Schedule:
    """``stage_s[j][s]``: time of one micro-batch of iteration j on stage s. Returns the
    makespan of all iterations of all micro-batches and each stage's busy time."""
    stages = len(stage_s[0])
    free = [0.0] * stages
    busy = [0.0] * stages
    done = [0.0] * microbatches                   # when micro-batch m left the last stage
    for times in stage_s:
        for m in range(microbatches):
            ready = done[m]
            for s in range(stages):
                start = max(free[s], ready)
                free[s] = start + times[s]
                busy[s] += times[s]
                ready = free[s] + (transfer_s if s < stages - 1 else 0.0)
            done[m] = free[stages - 1]
    return Schedule(max(done), tuple(busy))


@dataclass(frozen=True)
class PipelineTiming:
    stages: int
    microbatches: int
    prefill: Schedule
    decode: Optional[Schedule]
    stage_prefill_s: float             # one micro-batch's prefill on one stage
    stage_decode_s: float              # mean micro-batch decode step on one stage
    transfer_prefill_s: float          # stage-to-stage send of a prefill micro-batch
    transfer_decode_s: float
    ttft_s: float
    latency_s: float                   # ttft + every decode iteration of every micro-batch
    tpot_s: float                      # (latency - ttft) / (output - 1)
    memory: MemoryNeed                 # one device of a stage (rdusim.memory)
    oom: Optional[str]
    nodes_per_stage: int = 1           # nodes one stage's tensor-parallel group spans
    allreduce_intra_s: float = 0.0     # one decode all-reduce (a micro-batch's hidden state): in the node
    allreduce_inter_s: float = 0.0     # ... and its phase across nodes (0 within one node)
    decode_network_s: float = 0.0      # inter-node collective time in one decode step of a stage


def stage_deployment(dep: Deployment, stages: int) -> Deployment:
    """The deployment of one stage: the model cut to L/S layers, on one node."""
    layers = dep.model.num_hidden_layers
    return dataclasses.replace(dep, model=dataclasses.replace(dep.model, num_hidden_layers=layers // stages))


def check_split(cluster: ClusterSpec, dep: Deployment, stages: int, microbatches: int, batch: int) -> Optional[str]:
    """Why this split cannot be run (an input error), or None."""
    per = cluster.devices_per_node
    if dep.tp > per and dep.tp % per:
        return f"tp ({dep.tp}) at most the {per} devices of a node, or a multiple of {per} (whole nodes)"
    span = -(-dep.tp // per)
    if stages * span > cluster.nodes:
        if span > 1:
            return (f"tp ({dep.tp}: {span} nodes of {per} per stage) x stages ({stages}) at most the cluster's "
                    f"{cluster.nodes} nodes")
        return f"stages ({stages}) at most the cluster's {cluster.nodes} nodes"
    if dep.model.num_hidden_layers % stages:
        return f"stages ({stages}) dividing the {dep.model.num_hidden_layers} layers of {dep.model.name}"
    if batch % microbatches:
        return f"microbatches ({microbatches}) dividing the batch ({batch})"
    if dep.tp > per and dep.arch.collectives.span is None:
        return f"tp ({dep.tp}) at most the {per} devices of a node (the deployment cannot span nodes)"
    return None


def simulate_pipelined(cluster: ClusterSpec, dep: Deployment, stages: int, microbatches: int, prompt_tokens: int,
                       output_tokens: int, batch: int, cache: RunCache | None = None) -> PipelineTiming:
    """``dep``: the whole model on one node's machine with its tp (``dep.arch`` must be the
    cluster's node)."""
    why = check_split(cluster, dep, stages, microbatches, batch)
    if why:
        raise ValueError(why)
    cache = cache if cache is not None else RunCache()
    stage = stage_deployment(dep, stages)
    mb = batch // microbatches
    cfg = dep.model
    # a stage holds its layers' weights and KV cache (rdusim.memory's rule; the stage model's
    # KV formula counts only its own layers) and one micro-batch's workspace
    need = device_memory(stage, batch, prompt_tokens + output_tokens, prompt_tokens)
    if not need.fits:
        nan = math.nan
        return PipelineTiming(stages, microbatches, Schedule(nan, ()), None, nan, nan, nan, nan, nan, nan, nan,
                              need, need.reason)
    steps = StepModel(stage, cache)
    act = cfg.hidden_size * cfg.torch_dtype.nbytes          # one token's hidden state
    sends = stages > 1                                      # one stage: nothing goes stage to stage
    x_pre = cluster.send_s(mb * prompt_tokens * act, dep.tp) if sends else 0.0
    x_dec = cluster.send_s(mb * act, dep.tp) if sends else 0.0
    t_pre = steps.prefill(mb, prompt_tokens).time_s
    pre = schedule([[t_pre] * stages], x_pre, microbatches)
    ttft = dep.stack.costs.per_request_s + pre.makespan_s
    n = output_tokens - 1
    dec, t_dec = None, 0.0
    latency = ttft
    if n > 0:
        import numpy as np     # only a pipeline-parallel run pays for it

        times, _, _ = steps.decode(mb, np.arange(prompt_tokens, prompt_tokens + n))
        dec = schedule([[float(t)] * stages for t in times], x_dec, microbatches)
        t_dec = float(times.mean())
        latency = ttft + dec.makespan_s
    intra, inter = decode_allreduce_s(dep, mb * act)
    net = sum(r.get("inter_node_s", 0.0) for r in steps.engine_step(Phase.DECODE, mb, prompt_tokens).records)
    return PipelineTiming(stages, microbatches, pre, dec, t_pre, t_dec, x_pre, x_dec, ttft, latency,
                          (latency - ttft) / n if n > 0 else 0.0, need, None,
                          -(-dep.tp // cluster.devices_per_node), intra, inter, net)


def decode_allreduce_s(dep: Deployment, message_bytes: float) -> tuple[float, float]:
    """(in-node, across-node) seconds of one all-reduce of ``message_bytes`` over the
    deployment's tp ranks, as its machine's library runs it."""
    cost = family(dep.arch).collective(dep.arch, CollectiveOp.ALLREDUCE, dep.tp, message_bytes)
    if isinstance(cost, SpanningCost):
        return cost.intra_s, cost.inter_s
    return cost.time_s, 0.0
