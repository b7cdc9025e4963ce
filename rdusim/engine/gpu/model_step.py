"""One step of a whole model on a DGX GPU: kernels from the first layers repeated, then timed."""

from __future__ import annotations

from typing import Callable

from rdusim.config.deployment import Deployment
from rdusim.engine.gpu.launch import launch_cost_s
from rdusim.engine.gpu.repeat import TEMPLATE_LAYERS, repeated_kernels
from rdusim.engine.gpu.step import check_tp, simulate_kernels, simulate_step
from rdusim.engine.step import StepResult
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase

Memo = Callable[[tuple, Callable[[], object]], object]


def model_step(dep: Deployment, phase: Phase, batch: int, seq: int, host_s: float, memo: Memo,
               new_tokens: int = 1) -> StepResult:
    """One step; its kernels come from the model's first layers with the middle one repeated
    (:mod:`rdusim.engine.gpu.repeat`: the same kernels, without the whole model's graph)."""
    # each kernel runs at the tensor rate of the format its GEMM multiplies in (KernelWork.dtype)
    arch, cfg, tp = dep.arch, dep.model, dep.tp
    check_tp(arch, tp)
    launch_cost_s(arch, dep.launch)          # rejects RDU launch modes early
    if cfg.num_hidden_layers > TEMPLATE_LAYERS:
        key = ("gpu.kernels", arch, cfg, phase, batch, seq, tp, dep.fusion) + ((new_tokens,) if new_tokens != 1 else ())
        kernels = memo(key, lambda: _repeated(dep, phase, batch, seq, new_tokens))
        if kernels is not None:
            return simulate_kernels(arch, kernels, launch=dep.launch, tp=tp, host_s=host_s)
    graph = build_model_graph(cfg, phase, batch, seq, tp=tp, new_tokens=new_tokens)
    return simulate_step(arch, graph, fusion=dep.fusion, launch=dep.launch, tp=tp, host_s=host_s)


def _repeated(dep: Deployment, phase: Phase, batch: int, seq: int, new_tokens: int = 1):
    head = build_model_graph(dep.model, phase, batch, seq, tp=dep.tp, layers=TEMPLATE_LAYERS, new_tokens=new_tokens)
    return repeated_kernels(head, dep.model.num_hidden_layers, dep.fusion, dep.arch)
