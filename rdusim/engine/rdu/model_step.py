"""One step of a whole model on the SN40L: compile (cached) and simulate.

A step's plan is compiled from the model's first two layers and the last one repeated
(:func:`rdusim.compiler.repeat.compile_repeated`: the same plan as compiling the whole
model, without building its 30-80 layer graph), or from the whole graph when that
shortcut does not apply. Launch modes share a plan.
"""

from __future__ import annotations

from typing import Callable

from rdusim.compiler import Plan, compile_plan
from rdusim.compiler.repeat import TEMPLATE_LAYERS, compile_repeated, repeated_param_bytes
from rdusim.config.deployment import Deployment
from rdusim.engine.rdu.step import simulate_step
from rdusim.engine.step import StepResult
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase

Memo = Callable[[tuple, Callable[[], object]], object]


def model_plan(dep: Deployment, phase: Phase, batch: int, seq: int) -> tuple[Plan, float]:
    """The step's plan and the rank's parameter bytes."""
    cfg, arch, tp, tiles = dep.model, dep.arch, dep.tp, dep.execution.tiles
    layers = cfg.num_hidden_layers
    if layers > TEMPLATE_LAYERS:
        head = build_model_graph(cfg, phase, batch, seq, tp=tp, layers=TEMPLATE_LAYERS)
        plan = compile_repeated(head, layers, arch, dep.fusion, tiles=tiles)
        param_bytes = repeated_param_bytes(head, layers)
        if plan is not None and param_bytes is not None:
            return plan, param_bytes
    graph = build_model_graph(cfg, phase, batch, seq, tp=tp)
    return compile_plan(graph, arch, dep.fusion, tiles=tiles), graph.param_bytes


def model_step(dep: Deployment, phase: Phase, batch: int, seq: int, host_s: float, memo: Memo) -> StepResult:
    """One step of ``batch`` sequences at ``seq`` tokens (decode: the cache length);
    ``host_s``: the stack's host work for the step; ``memo(key, compute)`` caches plans."""
    key = ("rdu.plan", dep.arch, dep.model, phase, batch, seq, dep.tp, dep.fusion, dep.execution.tiles)
    plan, _ = memo(key, lambda: model_plan(dep, phase, batch, seq))
    return simulate_step(dep.arch, None, fusion=dep.fusion, launch=dep.launch, tp=dep.tp, plan=plan, host_s=host_s)
