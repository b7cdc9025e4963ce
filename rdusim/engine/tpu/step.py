"""One step on a TPU slice: the library-fusion kernels of one chip's graph, run back to
back inside one XLA program the host dispatches once.

The host does the stack's per-step work (``host_s``: scheduling, sampling), then
dispatches the step's compiled program (``launch.program_s``); the chip runs its fusions
one after another (XLA schedules a program's fusions in order on the one TensorCore).
Every chip of the tensor-parallel group runs the same fusions at the same times.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from rdusim.config.arch_tpu import TpuArch
from rdusim.config.policy import FusionPolicy, LaunchMode
from rdusim.engine.breakdown import BREAKDOWN_KEYS, frozen
from rdusim.engine.gpu.fusion_rules import partition
from rdusim.engine.gpu.kernels import Kernel, KernelClass, KernelTime
from rdusim.engine.step import Records, StepResult, timed_once
from rdusim.engine.tpu.kernels import kernel_time
from rdusim.graph.opgraph import OpGraph
from rdusim.tracing import Lane, TraceBuilder


def check_launch(arch: TpuArch, launch: LaunchMode) -> None:
    if launch not in arch.LAUNCH_MODES:
        raise ValueError(f"launch mode {launch.value!r} is not a TPU launch mode "
                         f"(use {[m.value for m in arch.LAUNCH_MODES]})")


def check_tp(arch: TpuArch, tp: int) -> None:
    """``tp`` chips laid along whole mesh axes of the slice (ValueError otherwise)."""
    arch.mesh_axes(tp)


def simulate_step(arch: TpuArch, graph: OpGraph, *, fusion: FusionPolicy, launch: LaunchMode, tp: int,
                  host_s: float = 0.0, trace: bool = False) -> StepResult:
    """Run ``graph`` (one TP rank's work, built with ``tp``) on one chip of the slice."""
    check_tp(arch, tp)
    check_launch(arch, launch)
    return simulate_kernels(arch, partition(graph, fusion, arch), launch=launch, tp=tp, host_s=host_s, trace=trace)


def simulate_kernels(arch: TpuArch, kernels: Sequence[Kernel], *, launch: LaunchMode, tp: int,
                     host_s: float = 0.0, trace: bool = False) -> StepResult:
    """:func:`simulate_step` of a graph already cut into ``kernels``."""
    check_tp(arch, tp)
    check_launch(arch, launch)
    times = timed_once(kernels, lambda work: kernel_time(arch, work))
    program = arch.launch.program_s if kernels else 0.0
    start = []
    clock = host_s + program
    for t in times:
        start.append(clock)
        clock += t.duration_s
    parts = dict.fromkeys(BREAKDOWN_KEYS, 0.0)
    parts["host"] = host_s
    parts["launch"] = program
    flops = hbm = busy = wire = 0.0
    for k, t in zip(kernels, times):
        flops += k.work.flops
        hbm += t.hbm_bytes
        wire += t.wire_bytes
        if k.work.cls == KernelClass.COLLECTIVE:
            parts["collective"] += t.duration_s
            continue
        roof = max(t.compute_s, t.memory_s)
        busy += t.compute_s
        parts["compute" if t.compute_s >= t.memory_s else "memory"] += roof
        parts["launch"] += t.duration_s - roof          # the fusion's floor: start, ramp, tail
    total = clock
    util = {"mxu": busy / total if total else 0.0,
            "hbm_bw": hbm / (total * arch.chip.hbm.bandwidth_bytes_per_s) if total else 0.0}
    kernels, times, start = tuple(kernels), tuple(times), tuple(start)
    events = _trace(arch, kernels, times, start, host_s, program) if trace else ()
    return StepResult(time_s=total, kernels=len(kernels), flops=flops, bytes_by_tier=frozen({"hbm": hbm}),
                      breakdown_s=frozen(parts), util=frozen(util),
                      records=Records(lambda: _records(kernels, times, start, host_s)), trace=events,
                      link_bytes=frozen({"fabric": wire}) if wire else frozen({}))


def _records(kernels: Sequence[Kernel], times: Sequence[KernelTime], start: Sequence[float],
             host_s: float) -> list[Mapping[str, Any]]:
    rows: list[Mapping[str, Any]] = [{"name": "framework", "kind": "host", "tag": "framework", "layer": -1, "ops": 0,
                                      "start_s": 0.0, "duration_s": host_s, "flops": 0.0, "bytes": 0.0,
                                      "compute_s": 0.0, "memory_s": 0.0, "floor_s": 0.0, "bound": "host",
                                      "algorithm": "", "steps": 0, "inter_node_s": 0.0}]
    for k, t, s in zip(kernels, times, start):
        rows.append({"name": k.name, "kind": k.work.cls.value, "tag": k.tag, "layer": k.layer, "ops": len(k.ops),
                     "start_s": s, "duration_s": t.duration_s, "flops": k.work.flops, "bytes": t.hbm_bytes,
                     "compute_s": t.compute_s, "memory_s": t.memory_s, "floor_s": t.floor_s, "bound": t.bound,
                     "algorithm": t.algorithm.value if t.algorithm is not None else "", "steps": t.steps,
                     "inter_node_s": t.inter_node_s})
    return rows


def _trace(arch: TpuArch, kernels: Sequence[Kernel], times: Sequence[KernelTime], start: Sequence[float],
           host_s: float, program_s: float) -> tuple:
    tb = TraceBuilder()
    chip, host = f"{arch.name}/chip0", f"{arch.name}/host"
    if host_s > 0:
        tb.span("framework", 0.0, host_s, device=host, lane=Lane.COMPUTE, cat="host")
    if program_s > 0:
        tb.span("dispatch program", host_s, program_s, device=host, lane=Lane.LAUNCH, cat="launch")
    for k, t, s in zip(kernels, times, start):
        lane = "ici" if k.work.cls == KernelClass.COLLECTIVE else Lane.COMPUTE
        tb.span(k.name, s, t.duration_s, device=chip, lane=lane, cat=k.work.cls.value, tag=k.tag, layer=k.layer)
    return tb.events()
