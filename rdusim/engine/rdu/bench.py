"""The fusion study's steps on the RDU: a benchmark's unfused and fused plans, each run in
the study's modes (unfused under software orchestration, fused under software and under
hardware orchestration)."""

from __future__ import annotations

from typing import Any, Optional

from rdusim.compiler import compile_plan
from rdusim.compiler import repeat, repeat_runs
from rdusim.compiler.plan import Plan
from rdusim.config.arch_rdu import RduArch
from rdusim.config.policy import FusionPolicy
from rdusim.engine.family import BenchGraphs, FusionRun
from rdusim.engine.rdu.step import simulate_plan
from rdusim.engine.step import StepResult
from rdusim.graph.phase import Phase


def bench_plans(arch: RduArch, graphs: BenchGraphs) -> dict[FusionPolicy, Plan]:
    """The step's unfused and fused plans. A step of a model is compiled from its first
    layers with one repeated (exactly the whole model's plans, without its graph:
    :mod:`rdusim.compiler.repeat` for inference, :mod:`rdusim.compiler.repeat_runs` for
    training, whose layers come back in backward and optimizer runs), unless the whole
    graph is already built. Raises rdusim.memory.OutOfMemory (the compiler's placement)."""
    tiles, buffering = graphs.tiles, graphs.buffering
    if graphs.built is None and graphs.layers:
        if graphs.phase == Phase.TRAIN:
            template, compile_repeated = repeat_runs.TEMPLATE_LAYERS, repeat_runs.compile_repeated_runs
        else:
            template, compile_repeated = repeat.TEMPLATE_LAYERS, repeat.compile_repeated
        if graphs.layers > template:
            head = graphs.cut(template)
            plans = {p: compile_repeated(head, graphs.layers, arch, p, tiles=tiles, buffering=buffering)
                     for p in FusionPolicy}
            if all(plan is not None for plan in plans.values()):
                return plans
    graph = graphs.whole()
    return {p: compile_plan(graph, arch, p, tiles=tiles, buffering=buffering) for p in FusionPolicy}


def bench_steps(arch: RduArch, graphs: BenchGraphs, runs: tuple[FusionRun, ...], host_s: float,
                timeline: Optional[Any] = None) -> dict[str, StepResult]:
    """Each run's step. ``timeline``: lay the traced steps on it (``next(mode)`` gives a
    StepTrace, ``advance(seconds)`` moves past the step)."""
    plans = bench_plans(arch, graphs)
    out = {}
    for run in runs:
        tracer = timeline.next(run.mode) if timeline else None
        out[run.mode] = step = simulate_plan(arch, plans[run.fusion], launch=run.launch, host_s=host_s,
                                             tracer=tracer)
        if timeline:
            timeline.advance(step.time_s)
    return out
