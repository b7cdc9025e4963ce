"""The TPU family: a slice of TPU chips behind the family interface (rdusim.engine.family)."""

from __future__ import annotations

from typing import Any, Optional

from rdusim.config.arch_common import ArchKind
from rdusim.config.arch_tpu import TpuArch
from rdusim.config.policy import FusionPolicy, LaunchMode
from rdusim.engine.collectives import CollectiveCost, CollectiveOp
from rdusim.engine.family import BenchGraphs, CopyLink, FusionRun, InPlace, Memo, hbm_link
from rdusim.engine.hostcpu import host_cpu_in_place
from rdusim.engine.gpu.bench import kernel_stream_steps
from rdusim.engine.step import StepResult
from rdusim.engine.tpu import model_step, step
from rdusim.engine.tpu.collectives import tpu_collective
from rdusim.graph.opgraph import OpGraph
from rdusim.graph.phase import Phase
from rdusim.graph.tensor import DType
from rdusim.engine.gpu.fusion_rules import kernel_ops

SPEEDUPS = (("fused_vs_unfused", "fused", "unfused"),)


def host_dram_link(host: int) -> str:
    return f"host_dram{host}"


def pcie_link(chip: int) -> str:
    return f"pcie{chip}"


class TpuFamily:
    kind = ArchKind.TPU
    schema = TpuArch
    fusion_speedups = SPEEDUPS

    def model_step(self, dep, phase: Phase, batch: int, seq: int, host_s: float, memo: Memo,
                   new_tokens: int = 1) -> StepResult:
        return model_step.model_step(dep, phase, batch, seq, host_s, memo, new_tokens=new_tokens)

    def packed_step(self, dep, mix, host_s: float, memo: Memo) -> StepResult:
        return model_step.STREAM.packed_step(dep, mix, host_s, memo)

    def varlen_time(self, dep, memo: Memo):
        return model_step.STREAM.varlen_time(dep, memo)

    def graph_step(self, arch: TpuArch, graph: OpGraph, *, fusion: FusionPolicy, launch: LaunchMode, tp: int,
                   host_s: float = 0.0, trace: bool = False) -> StepResult:
        return step.simulate_step(arch, graph, fusion=fusion, launch=launch, tp=tp, host_s=host_s, trace=trace)

    def collective(self, arch: TpuArch, op: CollectiveOp, ranks: int, message_bytes: float) -> CollectiveCost:
        """Bidirectional rings along the mesh axes the group spans."""
        return tpu_collective(arch, op, ranks, message_bytes)

    def kernel_ops(self, arch: TpuArch, graph: OpGraph, fusion: FusionPolicy, execution) -> tuple[tuple[str, ...], ...]:
        """XLA's fusions: the library-fusion kernel cut its step times (rdusim.engine.gpu.fusion_rules)."""
        return kernel_ops(graph, fusion, arch)

    def copy_links(self, arch: TpuArch, devices: int) -> tuple[list[CopyLink], list[tuple[str, ...]]]:
        """Each chip's shard: its host's DRAM (shared by the host's chips) -> the chip's PCIe
        link -> its HBM."""
        per_host = arch.host.chips_per_host
        dram, pcie, hbm = arch.host.dram, arch.host.pcie, arch.chip.hbm
        hosts = -(-devices // per_host)
        links: list[CopyLink] = [(host_dram_link(h), dram.effective_bandwidth_bytes_per_s, dram.latency_s)
                                 for h in range(hosts)]
        for c in range(devices):
            links += [(pcie_link(c), pcie.effective_bandwidth_bytes_per_s, pcie.latency_s),
                      (hbm_link(c), hbm.effective_bandwidth_bytes_per_s, 0.0)]
        return links, [(host_dram_link(c // per_host), pcie_link(c), hbm_link(c)) for c in range(devices)]

    def in_place(self, arch: TpuArch, weight: DType, devices: int) -> Optional[InPlace]:
        """On the host CPU (arch file's host_cpu, per host), over its DRAM; activations cross a chip's PCIe link."""
        return host_cpu_in_place(arch.host_cpu, arch.host.dram, weight, arch.host.pcie)

    def fusion_runs(self, launch: LaunchMode) -> tuple[FusionRun, ...]:
        """Every op its own fusion, and XLA's fusions; each step one program."""
        return (FusionRun("unfused", FusionPolicy.UNFUSED, launch), FusionRun("fused", FusionPolicy.FUSED, launch))

    def bench_steps(self, arch: TpuArch, graphs: BenchGraphs, runs: tuple[FusionRun, ...], host_s: float,
                    timeline: Optional[Any] = None) -> dict[str, StepResult]:
        return kernel_stream_steps(arch, graphs, runs, host_s, step.simulate_kernels, step.simulate_step)

    def step_tracer(self, builder, platform: str, start_s: float, label: str) -> None:
        return None


FAMILY = TpuFamily()
