"""The GPU family: the DGX-style GPU engine behind the family interface (rdusim.engine.family)."""

from __future__ import annotations

from typing import Any, Optional

from rdusim.config.arch_common import ArchKind
from rdusim.config.arch_gpu import GpuArch
from rdusim.config.policy import FusionPolicy, LaunchMode
from rdusim.engine.collectives import CollectiveCost, CollectiveOp
from rdusim.engine.family import BenchGraphs, CopyLink, FusionRun, InPlace, Memo
from rdusim.engine.hostcpu import host_cpu_in_place
from rdusim.engine.gpu import bench, fusion_rules, model_step, step
from rdusim.engine.gpu.hostcopy import dgx_host_links, host_to_gpu_path
from rdusim.engine.gpu.kernels import gpu_collective
from rdusim.engine.step import StepResult
from rdusim.graph.opgraph import OpGraph
from rdusim.graph.phase import Phase
from rdusim.graph.tensor import DType

SPEEDUPS = (("fused_vs_unfused", "fused", "unfused"),)


class GpuFamily:
    kind = ArchKind.GPU
    schema = GpuArch
    fusion_speedups = SPEEDUPS

    def model_step(self, dep, phase: Phase, batch: int, seq: int, host_s: float, memo: Memo,
                   new_tokens: int = 1) -> StepResult:
        return model_step.model_step(dep, phase, batch, seq, host_s, memo, new_tokens=new_tokens)

    def packed_step(self, dep, mix, host_s: float, memo: Memo) -> StepResult:
        return model_step.STREAM.packed_step(dep, mix, host_s, memo)

    def varlen_time(self, dep, memo: Memo):
        return model_step.STREAM.varlen_time(dep, memo)

    def graph_step(self, arch: GpuArch, graph: OpGraph, *, fusion: FusionPolicy, launch: LaunchMode, tp: int,
                   host_s: float = 0.0, trace: bool = False) -> StepResult:
        return step.simulate_step(arch, graph, fusion=fusion, launch=launch, tp=tp, host_s=host_s, trace=trace)

    def collective(self, arch: GpuArch, op: CollectiveOp, ranks: int, message_bytes: float) -> CollectiveCost:
        """NCCL over NVLink / NVSwitch."""
        return gpu_collective(arch, op, ranks, message_bytes)

    def kernel_ops(self, arch: GpuArch, graph: OpGraph, fusion: FusionPolicy, execution) -> tuple[tuple[str, ...], ...]:
        """The library-fusion kernel cut (rdusim.engine.gpu.fusion_rules)."""
        return fusion_rules.kernel_ops(graph, fusion, arch)

    def copy_links(self, arch: GpuArch, devices: int) -> tuple[list[CopyLink], list[tuple[str, ...]]]:
        """Each GPU's shard: host DRAM -> the shared host link -> its PCIe link -> its HBM."""
        return dgx_host_links(arch), [host_to_gpu_path(g) for g in range(devices)]

    def in_place(self, arch: GpuArch, weight: DType, devices: int) -> Optional[InPlace]:
        """On the host CPU, over host DRAM; activations cross one GPU's PCIe link."""
        return host_cpu_in_place(arch.host_cpu, arch.node.host_dram, weight, arch.links.pcie)

    def fusion_runs(self, launch: LaunchMode) -> tuple[FusionRun, ...]:
        """Eager PyTorch operators and library-fused kernels, both launched the platform's way."""
        return (FusionRun("unfused", FusionPolicy.UNFUSED, launch), FusionRun("fused", FusionPolicy.FUSED, launch))

    def bench_steps(self, arch: GpuArch, graphs: BenchGraphs, runs: tuple[FusionRun, ...], host_s: float,
                    timeline: Optional[Any] = None) -> dict[str, StepResult]:
        return bench.bench_steps(arch, graphs, runs, host_s, timeline)

    def step_tracer(self, builder, platform: str, start_s: float, label: str) -> None:
        return None          # the fusion study's timeline shows the RDU's pipelines only


FAMILY = GpuFamily()
