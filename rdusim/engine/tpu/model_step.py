"""One step of a whole model on a TPU slice: kernels from the first layers repeated, then timed."""

from __future__ import annotations

from rdusim.config.deployment import Deployment
from rdusim.engine.family import Memo
from rdusim.engine.gpu.repeat import TEMPLATE_LAYERS, repeated_kernels
from rdusim.engine.step import StepResult
from rdusim.engine.tpu.step import check_launch, check_tp, simulate_kernels, simulate_step
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase


def model_step(dep: Deployment, phase: Phase, batch: int, seq: int, host_s: float, memo: Memo,
               new_tokens: int = 1) -> StepResult:
    """One step; its kernels come from the model's first layers with the middle one repeated
    (the same kernels as the whole model's graph, without building it)."""
    arch, cfg, tp = dep.arch.at_compute(dep.model.fmt.compute), dep.model, dep.tp
    check_tp(arch, tp)
    check_launch(arch, dep.launch)
    if cfg.num_hidden_layers > TEMPLATE_LAYERS:
        key = ("tpu.kernels", arch, cfg, phase, batch, seq, tp, dep.fusion, new_tokens)
        kernels = memo(key, lambda: _repeated(dep, arch, phase, batch, seq, new_tokens))
        if kernels is not None:
            return simulate_kernels(arch, kernels, launch=dep.launch, tp=tp, host_s=host_s)
    graph = build_model_graph(cfg, phase, batch, seq, tp=tp, new_tokens=new_tokens)
    return simulate_step(arch, graph, fusion=dep.fusion, launch=dep.launch, tp=tp, host_s=host_s)


def _repeated(dep: Deployment, arch, phase: Phase, batch: int, seq: int, new_tokens: int):
    head = build_model_graph(dep.model, phase, batch, seq, tp=dep.tp, layers=TEMPLATE_LAYERS, new_tokens=new_tokens)
    return repeated_kernels(head, dep.model.num_hidden_layers, dep.fusion, arch)
