"""One step of a whole model on a TPU slice: kernels from the first layers repeated, then timed."""

from __future__ import annotations

from rdusim.config.deployment import Deployment
from rdusim.engine.family import Memo
from rdusim.engine.gpu.repeat import TEMPLATE_LAYERS, repeated_kernels
from rdusim.engine.step import StepResult
from rdusim.engine.gpu.fusion_rules import partition
from rdusim.engine.gpu.kernels import Kernel
from rdusim.engine.tpu.kernels import kernel_time
from rdusim.engine.tpu.step import check_launch, check_tp, simulate_kernels
from rdusim.engine.varlen import KernelStream
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase


def model_step(dep: Deployment, phase: Phase, batch: int, seq: int, host_s: float, memo: Memo,
               new_tokens: int = 1) -> StepResult:
    """One step; its kernels come from the model's first layers with the middle one repeated
    (the same kernels as the whole model's graph, without building it)."""
    arch = _arch(dep)
    kernels = step_kernels(dep, phase, batch, seq, memo, new_tokens)
    return simulate_kernels(arch, kernels, launch=dep.launch, tp=dep.tp, host_s=host_s)


def _arch(dep: Deployment):
    """The chip at the model's compute format."""
    return dep.arch.at_compute(dep.model.fmt.compute)


def step_kernels(dep: Deployment, phase: Phase, batch: int, seq: int, memo: Memo,
                 new_tokens: int = 1) -> tuple[Kernel, ...]:
    """The kernels (XLA fusions) of the step."""
    arch, cfg, tp = _arch(dep), dep.model, dep.tp
    check_tp(arch, tp)
    check_launch(arch, dep.launch)
    if cfg.num_hidden_layers > TEMPLATE_LAYERS:
        key = ("tpu.kernels", arch, cfg, phase, batch, seq, tp, dep.fusion, new_tokens)
        kernels = memo(key, lambda: _repeated(dep, arch, phase, batch, seq, new_tokens))
        if kernels is not None:
            return kernels
    return partition(build_model_graph(cfg, phase, batch, seq, tp=tp, new_tokens=new_tokens), dep.fusion, arch)


def _timer(dep: Deployment):
    arch = _arch(dep)
    return lambda work: kernel_time(arch, work).duration_s


# packed prefill steps (rdusim.engine.varlen): this engine's kernels, timed its way
STREAM = KernelStream(step_kernels, lambda dep, kernels, host_s: simulate_kernels(
    _arch(dep), kernels, launch=dep.launch, tp=dep.tp, host_s=host_s), _timer)


def _repeated(dep: Deployment, arch, phase: Phase, batch: int, seq: int, new_tokens: int):
    head = build_model_graph(dep.model, phase, batch, seq, tp=dep.tp, layers=TEMPLATE_LAYERS, new_tokens=new_tokens)
    return repeated_kernels(head, dep.model.num_hidden_layers, dep.fusion, arch)
