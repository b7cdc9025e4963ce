"""One step of a graph on one GPU of a DGX: fusion -> kernels -> timed -> host/stream simulation."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from rdusim.config.arch_gpu import GpuArch
from rdusim.config.policy import FusionPolicy, LaunchMode
from rdusim.engine.gpu.fusion_rules import partition
from rdusim.engine.gpu.kernels import Kernel, KernelClass, KernelTime, kernel_time
from rdusim.engine.gpu.launch import StreamTimeline, launch_cost_s, run_stream
from rdusim.engine.breakdown import BREAKDOWN_KEYS, frozen
from rdusim.engine.step import Records, StepResult, timed_once
from rdusim.graph.opgraph import OpGraph
from rdusim.graph.tensor import TensorRole
from rdusim.tracing import Lane, TraceBuilder  # only when a trace is asked for


def graph_batch(graph: OpGraph) -> int:
    """Sequences in the step: the leading dimension of the graph's input tokens (1 if none)."""
    for op in graph.ops:
        for t in op.inputs:
            if t.role == TensorRole.INPUT and t.shape:
                return int(t.shape[0])
    return 1


def check_tp(arch: GpuArch, tp: int) -> None:
    """1..gpus of the node, or of the cluster's nodes its collectives may span (``collectives.span``)."""
    span = arch.collectives.span
    most = arch.node.gpus if span is None else span.max_ranks
    if not 1 <= tp <= most:
        raise ValueError(f"tp={tp} needs 1..{most} GPUs of {arch.name}" + ("" if span is None else
                         f" ({span.nodes} nodes)"))


def simulate_step(arch: GpuArch, graph: OpGraph, *, fusion: FusionPolicy, launch: LaunchMode, tp: int,
                  host_s: float = 0.0, trace: bool = False) -> StepResult:
    """Run ``graph`` (one TP rank's work, built with ``tp``) on one GPU; all ranks run in lock step.
    ``host_s``: the serving stack's host work per step (scheduling, sampling) before the launches."""
    check_tp(arch, tp)
    launch_cost_s(arch, launch)               # bad launch modes fail before the partition
    return simulate_kernels(arch, partition(graph, fusion, arch), launch=launch, tp=tp,
                            host_s=host_s, trace=trace)


def simulate_kernels(arch: GpuArch, kernels: Sequence[Kernel], *, launch: LaunchMode, tp: int,
                     host_s: float = 0.0, trace: bool = False) -> StepResult:
    """:func:`simulate_step` of a graph already cut into ``kernels``."""
    check_tp(arch, tp)
    cost = launch_cost_s(arch, launch)
    times = timed_once(kernels, lambda work: kernel_time(arch, work))
    timeline = run_stream([t.duration_s for t in times], cost, host_s)
    return assemble(arch, kernels, times, timeline, host_s, trace=trace)


def assemble(arch: GpuArch, kernels: Sequence[Kernel], times: Sequence[KernelTime], tl: StreamTimeline,
             host_s: float, *, trace: bool = False) -> StepResult:
    total = tl.end if kernels else host_s
    parts = dict.fromkeys(BREAKDOWN_KEYS, 0.0)
    parts["host"] = host_s
    parts["launch"] = tl.exposed_total_s
    sm_time = 0.0
    flops = hbm = wire = 0.0
    for k, t in zip(kernels, times):
        flops += k.work.flops
        hbm += t.hbm_bytes
        wire += t.wire_bytes
        sm_time += t.duration_s * t.active_sms / arch.device.sms
        if k.work.cls == KernelClass.COLLECTIVE:
            parts["collective"] += t.duration_s
            continue
        roof = max(t.compute_s, t.memory_s)
        parts["compute" if t.compute_s >= t.memory_s else "memory"] += roof
        parts["launch"] += t.duration_s - roof       # the kernel's floor: launch latency, ramp, tail
    util = {"sm": sm_time / total if total else 0.0,
            "hbm_bw": hbm / (total * arch.device.hbm.bandwidth_bytes_per_s) if total else 0.0}
    kernels, times = tuple(kernels), tuple(times)
    events = _trace(arch, kernels, tl, host_s) if trace else ()
    return StepResult(time_s=total, kernels=len(kernels), flops=flops, bytes_by_tier=frozen({"hbm": hbm}),
                      breakdown_s=frozen(parts), util=frozen(util),
                      records=Records(lambda: _records(kernels, times, tl, host_s)), trace=events,
                      link_bytes=frozen({"fabric": wire}) if wire else frozen({}))


def _records(kernels: Sequence[Kernel], times: Sequence[KernelTime], tl: StreamTimeline, host_s: float) -> list:
    """The step's records: the host's work, then one per kernel."""
    shared: dict[int, tuple] = {}         # what a record reads from its KernelTime, once per time object
    records = [_host_record(host_s)]
    records += [_record(k, t, tl, i, shared) for i, (k, t) in enumerate(zip(kernels, times))]
    return records


def _host_record(host_s: float) -> Mapping[str, Any]:
    return {"name": "framework", "kind": "host", "tag": "framework", "layer": -1, "ops": 0,
            "issue_s": 0.0, "start_s": 0.0, "duration_s": host_s, "flops": 0.0, "bytes": 0.0,
            "compute_s": 0.0, "memory_s": 0.0, "floor_s": 0.0, "bound": "host", "active_sms": 0, "waves": 0,
            "launch_gap_s": 0.0, "exposed_launch_s": 0.0, "algorithm": "", "steps": 0,
            "inter_node_s": 0.0}


def _record(k: Kernel, t: KernelTime, tl: StreamTimeline, i: int,
            shared: dict[int, tuple] | None = None) -> Mapping[str, Any]:
    """The record of the ``i``-th kernel. ``shared``: the values it reads from ``t`` by
    ``id(t)`` (repeated layers' kernels share their KernelTime objects), filled as met."""
    got = shared.get(id(t)) if shared is not None else None
    if got is None:
        got = (t.duration_s, t.hbm_bytes, t.compute_s, t.memory_s, t.floor_s, t.bound, t.active_sms, t.waves,
               t.algorithm.value if t.algorithm is not None else "", t.steps, t.inter_node_s, t)
        if shared is not None:
            shared[id(t)] = got       # holds t: its id stays its own while the dict lives
    duration, nbytes, compute, memory, floor, bound, sms, waves, algorithm, steps, inter, _ = got
    return {"name": k.name, "kind": k.work.cls.value, "tag": k.tag, "layer": k.layer, "ops": len(k.ops),
            "issue_s": tl.issue_s[i], "start_s": tl.start_s[i], "duration_s": duration,
            "flops": k.work.flops, "bytes": nbytes, "compute_s": compute, "memory_s": memory,
            "floor_s": floor, "bound": bound, "active_sms": sms, "waves": waves,
            # how long the launched kernel waited in the stream (launch hidden) ...
            "launch_gap_s": tl.start_s[i] - tl.issue_s[i],
            # ... or how long the GPU idled waiting for the host to launch it (launch exposed)
            "exposed_launch_s": tl.exposed_s[i],
            # a collective's algorithm and latency steps (rdusim.engine.collectives)
            "algorithm": algorithm, "steps": steps,
            # of which its phase across nodes (a collective spanning a cluster's nodes; else 0)
            "inter_node_s": inter}


def _trace(arch: GpuArch, kernels: Sequence[Kernel], tl: StreamTimeline, host_s: float) -> tuple:
    tb = TraceBuilder()
    gpu, host = f"{arch.name}/gpu0", f"{arch.name}/host"
    if host_s > 0:
        tb.span("framework", 0.0, host_s, device=host, lane=Lane.COMPUTE, cat="host")
    prev = host_s
    for i, k in enumerate(kernels):
        tb.span(f"launch {k.name}", prev, tl.issue_s[i] - prev, device=host, lane=Lane.LAUNCH, cat="launch")
        prev = tl.issue_s[i]
        lane = "nvlink" if k.work.cls == KernelClass.COLLECTIVE else Lane.COMPUTE
        tb.span(k.name, tl.start_s[i], tl.end_s[i] - tl.start_s[i], device=gpu, lane=lane, cat=k.work.cls.value,
                tag=k.tag, layer=k.layer)
    return tb.events()
