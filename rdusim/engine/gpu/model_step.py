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
from rdusim.engine.varlen import Mix, packed_step_kernels, varlen_timer
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


def packed_step(dep: Deployment, mix: Mix, host_s: float, memo: Memo) -> StepResult | None:
    """The prefill step of the sequences of ``mix`` packed together (:mod:`rdusim.engine.varlen`)."""
    kernels = packed_step_kernels(_steps(dep, memo), mix, dep.model.sliding_window)
    if kernels is None:
        return None
    return simulate_kernels(dep.arch, kernels, launch=dep.launch, tp=dep.tp, host_s=host_s)


def varlen_time(dep: Deployment, memo: Memo):
    """Seconds of a prefill step's kernels that change with its mix of sequences, for any mix."""
    arch = dep.arch
    return varlen_timer(_steps(dep, memo), dep.model.sliding_window,
                        lambda work: kernel_time(arch, work).duration_s)


def _steps(dep: Deployment, memo: Memo):
    """(sequences, new tokens, cached context) -> the step's kernels: a prefill, or a chunk
    over a cache (a step computing that many tokens over the context)."""
    def steps(batch: int, tokens: int, context: int):
        if context == 0:
            return step_kernels(dep, Phase.PREFILL, batch, tokens, memo)
        return step_kernels(dep, Phase.DECODE, batch, context, memo, new_tokens=tokens)
    return steps


def _repeated(dep: Deployment, phase: Phase, batch: int, seq: int, new_tokens: int = 1):
    head = build_model_graph(dep.model, phase, batch, seq, tp=dep.tp, layers=TEMPLATE_LAYERS, new_tokens=new_tokens)
    return repeated_kernels(head, dep.model.num_hidden_layers, dep.fusion, dep.arch)
