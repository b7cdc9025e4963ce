"""StepResult: one step (one pass of a graph) simulated on one machine.

Both engines return it from ``simulate_step``:
  rdusim.engine.rdu.step.simulate_step(arch: RduArch, graph, *, fusion, launch, tp) -> StepResult
  rdusim.engine.gpu.step.simulate_step(arch: GpuArch, graph, *, fusion, launch, tp) -> StepResult
``graph`` is the OpGraph one TP rank runs (built with the same ``tp``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class StepResult:
    time_s: float                          # wall time of the step, launches and collectives included
    kernels: int                           # kernels launched
    flops: float                           # FLOPs executed per device
    bytes_by_tier: Mapping[str, float]     # off-chip bytes per device by tier ("hbm", "ddr", "host")
    breakdown_s: Mapping[str, float]       # time split by engine.inference.BREAKDOWN_KEYS; sums to time_s
    util: Mapping[str, float]              # 0..1: "pcu", "pmu", "hbm_bw" (RDU); "sm", "hbm_bw" (GPU)
    records: tuple[Mapping[str, Any], ...] = field(default=())   # one flat row per kernel
    trace: tuple[Mapping[str, Any], ...] = field(default=(), compare=False)  # Chrome trace events

    @property
    def oi_flops_per_byte(self) -> float:
        moved = sum(self.bytes_by_tier.values())
        return self.flops / moved if moved else float("inf")
