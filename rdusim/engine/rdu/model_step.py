"""One step of a whole model on the SN40L: compile (cached) and simulate.

A step's plan is compiled from the model's first two layers and the last one repeated
(:func:`rdusim.compiler.repeat.compile_repeated`: the same plan as compiling the whole
model, without building its 30-80 layer graph), or from the whole graph when that
shortcut does not apply. Launch modes share a plan.
"""

from __future__ import annotations

from typing import Callable

from rdusim.compiler import Plan, compile_plan
from rdusim.compiler.target import CompileTarget
from rdusim.compiler.repeat import TEMPLATE_LAYERS, compile_repeated, repeated_param_bytes
from rdusim.config.deployment import Deployment
from rdusim.config.formats import arch_at
from rdusim.engine.rdu.step import simulate_step
from rdusim.engine.step import StepResult
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase

Memo = Callable[[tuple, Callable[[], object]], object]


def model_plan(dep: Deployment, phase: Phase, batch: int, seq: int, new_tokens: int = 1) -> tuple[Plan, float]:
    """The step's plan and the rank's parameter bytes."""
    cfg, tp, tiles = dep.model, dep.tp, dep.execution.tiles
    arch = arch_at(dep.arch, cfg.fmt.compute)        # PCU rate of the compute format
    layers = cfg.num_hidden_layers
    if layers > TEMPLATE_LAYERS:
        head = build_model_graph(cfg, phase, batch, seq, tp=tp, layers=TEMPLATE_LAYERS, new_tokens=new_tokens)
        plan = compile_repeated(head, layers, arch, dep.fusion, tiles=tiles, buffering=dep.execution.buffering)
        param_bytes = repeated_param_bytes(head, layers)
        if plan is not None and param_bytes is not None:
            return plan, param_bytes
    graph = build_model_graph(cfg, phase, batch, seq, tp=tp, new_tokens=new_tokens)
    return compile_plan(graph, arch, dep.fusion, tiles=tiles, buffering=dep.execution.buffering), graph.param_bytes


def model_step(dep: Deployment, phase: Phase, batch: int, seq: int, host_s: float, memo: Memo,
               new_tokens: int = 1) -> StepResult:
    """One step of ``batch`` sequences at ``seq`` tokens (decode: the cache length);
    ``host_s``: the stack's host work for the step; ``memo(key, compute)`` caches plans."""
    # keyed by what the compiler reads (not DDR bandwidth, links or launch costs): a sweep over
    # those reuses the plan
    key = ("rdu.plan", CompileTarget.of(dep.arch), dep.model, phase, batch, seq, new_tokens, dep.tp, dep.fusion,
           dep.execution.tiles, dep.execution.buffering)
    plan, _ = memo(key, lambda: model_plan(dep, phase, batch, seq, new_tokens))
    return simulate_step(arch_at(dep.arch, dep.model.fmt.compute), None, fusion=dep.fusion, launch=dep.launch,
                         tp=dep.tp, plan=plan, host_s=host_s)
