"""The fusion study's steps on a GPU: the benchmark's kernels unfused and fused, launched
the platform's way, after the one memory rule (rdusim.memory_need) over the library-fusion
kernel cut (rdusim.engine.gpu.fusion_rules, which a TPU's XLA fusions share)."""

from __future__ import annotations

from typing import Any, Callable, Optional

from rdusim.config.arch_gpu import GpuArch
from rdusim.config.policy import FusionPolicy
from rdusim.engine.family import BenchGraphs, FusionRun
from rdusim.engine.gpu import fusion_rules, repeat
from rdusim.engine.gpu.step import simulate_kernels, simulate_step
from rdusim.engine.step import StepResult
from rdusim.graph.phase import Phase
from rdusim.memory_need import OutOfMemory, graph_need, repeated_graph_need


POLICIES = (FusionPolicy.UNFUSED, FusionPolicy.FUSED)


def fullest(needs):
    """The memory need a platform is judged by when it runs every mode of a benchmark: the
    first that does not fit, else the one using the most HBM (each mode materialises its own
    activations: the unfused one its attention scores)."""
    bad = [n for n in needs if not n.fits]
    return bad[0] if bad else max(needs, key=lambda n: n.tiers[0].used_bytes)


def repeated(arch, graphs: BenchGraphs, repeat_layer: int = 1):
    """(memory need, kernels by policy) of a step of a model from its first layers with the
    middle one repeated (:mod:`rdusim.engine.gpu.repeat`: the whole model's kernels and
    footprint without its 30-80 layer graph; a training step's layers come back in its
    backward and optimizer runs), or None when that shortcut does not apply (then the
    whole graph is built)."""
    if not graphs.layers or graphs.layers <= repeat.TEMPLATE_LAYERS:
        return None
    head = graphs.cut(repeat.TEMPLATE_LAYERS)
    needs = [repeated_graph_need(arch, head, graphs.layers, repeat_layer, fusion_rules.kernel_ops(head, p, arch))
             for p in POLICIES]
    # looked up at call time: tests count the shortcut by patching the module
    kernels_of = repeat.repeated_step_kernels if graphs.phase == Phase.TRAIN else repeat.repeated_kernels
    kernels = {p: kernels_of(head, graphs.layers, p, arch) for p in POLICIES}
    if any(n is None for n in needs) or any(k is None for k in kernels.values()):
        return None
    return fullest(needs), kernels


def bench_steps(arch: GpuArch, graphs: BenchGraphs, runs: tuple[FusionRun, ...], host_s: float,
                timeline: Optional[Any] = None) -> dict[str, StepResult]:
    """Each run's step on the GPU (``timeline``: unused, GPU steps are not drawn)."""
    return kernel_stream_steps(arch, graphs, runs, host_s, simulate_kernels, simulate_step)


def kernel_stream_steps(arch, graphs: BenchGraphs, runs: tuple[FusionRun, ...], host_s: float,
                        run_kernels: Callable[..., StepResult], run_graph: Callable[..., StepResult]
                        ) -> dict[str, StepResult]:
    """Each run's step of a machine that runs the library-fusion kernel cut (a GPU; a TPU's
    XLA fusions), timed by its ``run_kernels(arch, kernels, ...)`` / ``run_graph(arch, graph,
    ...)``: from the repeated kernels when they apply, else from the whole graph. Raises
    OutOfMemory when the step does not fit one device."""
    got = repeated(arch, graphs)
    if got is not None:
        need, kernels, graph = got[0], got[1], None
    else:
        graph = graphs.whole()
        need, kernels = fullest([graph_need(arch, graph, fusion_rules.kernel_ops(graph, p, arch)) for p in POLICIES]), None
    if not need.fits:
        raise OutOfMemory(need.reason)
    out = {}
    for run in runs:
        if kernels is not None:
            out[run.mode] = run_kernels(arch, kernels[run.fusion], launch=run.launch, tp=graphs.tp, host_s=host_s)
        else:
            out[run.mode] = run_graph(arch, graph, fusion=run.fusion, launch=run.launch, tp=graphs.tp, host_s=host_s)
    return out
