"""The RDU family: the SN40L's engine behind the family interface (rdusim.engine.family)."""

from __future__ import annotations

from typing import Any, Optional

from rdusim.config.arch_common import ArchKind
from rdusim.config.arch_rdu import RduArch
from rdusim.config.policy import FusionPolicy, LaunchMode
from rdusim.engine.collectives import CollectiveCost, CollectiveOp, collective_cost
from rdusim.engine.family import BenchGraphs, CopyLink, FusionRun, InPlace, InPlaceWhere, Memo, hbm_link
from rdusim.engine.rdu import bench, model_step, step
from rdusim.engine.rdu.trace import StepTrace
from rdusim.engine.step import StepResult
from rdusim.graph.opgraph import OpGraph
from rdusim.graph.phase import Phase
from rdusim.graph.tensor import DType
from rdusim.tracing import TraceBuilder
from rdusim.compiler.compile import kernel_ops

# the SN40L paper's fusion study: unfused under software orchestration (every PyTorch
# operator a kernel the framework launches), fused under both
RUNS = (FusionRun("unfused", FusionPolicy.UNFUSED, LaunchMode.SOFTWARE),
        FusionRun("fused_so", FusionPolicy.FUSED, LaunchMode.SOFTWARE),
        FusionRun("fused_ho", FusionPolicy.FUSED, LaunchMode.HARDWARE))
SPEEDUPS = (("fused_so_vs_unfused", "fused_so", "unfused"), ("fused_ho_vs_unfused", "fused_ho", "unfused"),
            ("fused_ho_vs_fused_so", "fused_ho", "fused_so"))


def ddr_link(socket: int) -> str:
    return f"ddr{socket}"


def agcu_link(socket: int) -> str:
    return f"agcu{socket}"


class RduFamily:
    kind = ArchKind.RDU
    schema = RduArch
    fusion_speedups = SPEEDUPS

    def model_step(self, dep, phase: Phase, batch: int, seq: int, host_s: float, memo: Memo,
                   new_tokens: int = 1) -> StepResult:
        return model_step.model_step(dep, phase, batch, seq, host_s, memo, new_tokens=new_tokens)

    def packed_step(self, dep, mix, host_s: float, memo: Memo) -> None:
        return None          # the fused-layer pipelines are compiled for uniform batches

    def varlen_time(self, dep, memo: Memo) -> None:
        return None          # attention streams inside the fused layer: packed_steps' attention grid

    def graph_step(self, arch: RduArch, graph: OpGraph, *, fusion: FusionPolicy, launch: LaunchMode, tp: int,
                   host_s: float = 0.0, trace: bool = False) -> StepResult:
        return step.simulate_step(arch, graph, fusion=fusion, launch=launch, tp=tp, host_s=host_s, trace=trace)

    def collective(self, arch: RduArch, op: CollectiveOp, ranks: int, message_bytes: float) -> CollectiveCost:
        """The runtime's collective primitives over the sockets' P2P links."""
        return collective_cost(op, ranks, message_bytes, arch.links.p2p, arch.collectives)

    def kernel_ops(self, arch: RduArch, graph: OpGraph, fusion: FusionPolicy, execution) -> tuple[tuple[str, ...], ...]:
        """The compiler's partition (rdusim.compiler.compile.kernel_ops) at the run's tiles and buffering."""
        return kernel_ops(graph, arch, fusion, tiles=execution.tiles, buffering=execution.buffering)

    def copy_links(self, arch: RduArch, devices: int) -> tuple[list[CopyLink], list[tuple[str, ...]]]:
        """Each socket copies its shard from its own DDR into its own HBM: the DDR read, the
        AGCUs bridging the tile to the memories (count x bandwidth), the HBM write. Sockets
        share nothing."""
        sock = arch.socket
        links: list[CopyLink] = []
        for s in range(devices):
            links += [(ddr_link(s), sock.ddr.effective_bandwidth_bytes_per_s, sock.ddr.latency_s),
                      (agcu_link(s), sock.agcu.count * sock.agcu.bandwidth_bytes_per_s, 0.0),
                      (hbm_link(s), sock.hbm.effective_bandwidth_bytes_per_s, 0.0)]
        return links, [(ddr_link(s), agcu_link(s), hbm_link(s)) for s in range(devices)]

    def in_place(self, arch: RduArch, weight: DType, devices: int) -> Optional[InPlace]:
        """On the sockets themselves, each reading its shard from its own DDR (the SN40L's
        three-tier memory: no copy, no host link); the PCUs at the weights' format where they
        compute in it, else at bf16 (dequantised on the fly)."""
        rate = arch.native_rate(weight) or arch.native_rate(DType.BF16)
        return InPlace(InPlaceWhere.DDR, devices * rate, devices * arch.socket.ddr.effective_bandwidth_bytes_per_s)

    def fusion_runs(self, launch: LaunchMode) -> tuple[FusionRun, ...]:
        return RUNS

    def bench_steps(self, arch: RduArch, graphs: BenchGraphs, runs: tuple[FusionRun, ...], host_s: float,
                    timeline: Optional[Any] = None) -> dict[str, StepResult]:
        return bench.bench_steps(arch, graphs, runs, host_s, timeline)

    def step_tracer(self, builder: TraceBuilder, platform: str, start_s: float, label: str) -> StepTrace:
        """TP rank 0's socket only: the other ranks run the same kernels at the same times."""
        return StepTrace(builder, platform, sockets=1, start_s=start_s, label=label)


FAMILY = RduFamily()
