"""One step of a whole model on a DGX GPU: kernels from the first layers repeated, then timed."""

from __future__ import annotations

from typing import Callable

from rdusim.config.deployment import Deployment
from rdusim.engine.gpu.launch import launch_cost_s
from rdusim.engine.gpu.repeat import TEMPLATE_LAYERS, repeated_kernels
from rdusim.engine.gpu.fusion_rules import partition
from rdusim.engine.gpu.kernels import Kernel, kernel_time
from rdusim.engine.gpu.step import check_tp, simulate_kernels
from rdusim.engine.step import StepResult
from rdusim.engine.varlen import KernelStream
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase

Memo = Callable[[tuple, Callable[[], object]], object]


def model_step(dep: Deployment, phase: Phase, batch: int, seq: int, host_s: float, memo: Memo,
               new_tokens: int = 1) -> StepResult:
    """One step; its kernels come from the model's first layers with the middle one repeated
    (:mod:`rdusim.engine.gpu.repeat`: the same kernels, without the whole model's graph)."""
    # each kernel runs at the tensor rate of the format its GEMM multiplies in (KernelWork.dtype)
    kernels = step_kernels(dep, phase, batch, seq, memo, new_tokens)
    return simulate_kernels(dep.arch, kernels, launch=dep.launch, tp=dep.tp, host_s=host_s)


def step_kernels(dep: Deployment, phase: Phase, batch: int, seq: int, memo: Memo,
                 new_tokens: int = 1) -> tuple[Kernel, ...]:
    """The kernels one TP rank launches for the step."""
    arch, cfg, tp = dep.arch, dep.model, dep.tp
    check_tp(arch, tp)
    launch_cost_s(arch, dep.launch)          # rejects RDU launch modes early
    if cfg.num_hidden_layers > TEMPLATE_LAYERS:
        key = ("gpu.kernels", arch, cfg, phase, batch, seq, tp, dep.fusion) + ((new_tokens,) if new_tokens != 1 else ())
        kernels = memo(key, lambda: _repeated(dep, phase, batch, seq, new_tokens))
        if kernels is not None:
            return kernels
    return partition(build_model_graph(cfg, phase, batch, seq, tp=tp, new_tokens=new_tokens), dep.fusion, arch)


def _timer(dep: Deployment):
    arch = dep.arch
    return lambda work: kernel_time(arch, work).duration_s


# packed prefill steps (rdusim.engine.varlen): this engine's kernels, timed its way
STREAM = KernelStream(step_kernels, lambda dep, kernels, host_s: simulate_kernels(
    dep.arch, kernels, launch=dep.launch, tp=dep.tp, host_s=host_s), _timer)


def _repeated(dep: Deployment, phase: Phase, batch: int, seq: int, new_tokens: int = 1):
    head = build_model_graph(dep.model, phase, batch, seq, tp=dep.tp, layers=TEMPLATE_LAYERS, new_tokens=new_tokens)
    return repeated_kernels(head, dep.model.num_hidden_layers, dep.fusion, dep.arch)
