"""What one simulated execution of a kernel measured, and the arithmetic both evaluations share.

The pipeline's processes (:mod:`rdusim.engine.rdu.pipeline_process`, driven by the SimPy
loop and by the fast loop) take every per-tile constant (a stage's tile time, a stream's
service and AGCU time, a collective's latency, wire bytes and rate) from these functions,
and both loops the final summary, so the two perform the same floating-point operations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from rdusim.compiler.plan import Kernel, Stage, StageKind, Stream
from rdusim.engine.rdu.collective import plan_collective_cost
from rdusim.engine.rdu.hardware import SocketHw


@dataclass(frozen=True)
class KernelRun:
    """What one simulated execution of a kernel measured."""

    duration_s: float
    bytes_by_tier: Mapping[str, float]
    tier_busy_s: Mapping[str, float]
    stage_busy_s: tuple[float, ...]
    compute_busy_s: float       # busy time of the busiest compute/move stage
    collective_s: float         # time collective stages spent (latency + wire)
    pcu_busy: float             # PCU-seconds computing / (allocated PCUs x duration)
    d2d_bytes: float
    p2p_bytes: float
    # when things happened inside the kernel (for traces): each stage's first tile start and
    # last tile end, and each channel's ("hbm", "ddr", "host", "p2p", "d2d") first and last
    # moment of use, in seconds from the kernel's start
    stage_window_s: tuple[tuple[float, float], ...] = ()
    channel_window_s: Mapping[str, tuple[float, float]] = field(default_factory=dict)


def tile_time(s: Stage, hw: SocketHw, tiles: int) -> float:
    """A stage's time per tile: the slower of its compute and its operand feed from PMUs."""
    feed = s.in_bytes / (max(1, s.pmus_bandwidth) * hw.pmu_bw) if s.in_bytes else 0.0
    return max(s.compute_s, feed) / tiles


def stream_link(hw: SocketHw, st: Stream, nbytes: float) -> tuple:
    """Per-tile constants of a stream moving ``nbytes`` a tile: first-byte latency, the
    tier, the tier's service time, and what its AGCUs add to it."""
    bw = hw.tier_bw[st.tier]
    return (hw.tier_latency[st.tier], st.tier, nbytes / bw, nbytes / (st.agcus * hw.agcu_bw) - nbytes / bw)


def collective_terms(s: Stage, hw: SocketHw, tiles: int) -> tuple:
    """(latency, wire bytes a tile, rate) of a collective stage on the P2P port; (0, 0, None)
    for any other stage (the P2P link is read only by collective stages)."""
    if s.kind == StageKind.COLLECTIVE and s.collective is not None:
        cost = plan_collective_cost(s.collective, hw.p2p, hw.collectives)
        return cost.latency_s, cost.wire_bytes / tiles, cost.bandwidth_bytes_per_s
    return 0.0, 0.0, None


def summarise(kernel: Kernel, duration: float, moved: dict, tier_busy: dict, busy: Sequence[float],
              coll: float, d2d_bytes: float, p2p_bytes: float, window: Sequence[tuple[float, float]],
              channels: dict) -> KernelRun:
    """The KernelRun of a finished simulation."""
    stages = kernel.stages
    pcu_s = sum(b * s.pcus for b, s in zip(busy, stages) if s.kind == StageKind.COMPUTE)
    pcus = sum(s.pcus for s in stages)
    compute = max((b for b, s in zip(busy, stages) if s.kind != StageKind.COLLECTIVE), default=0.0)
    return KernelRun(duration, moved, tier_busy, tuple(busy), compute, coll,
                     pcu_s / (pcus * duration) if pcus and duration else 0.0, d2d_bytes, p2p_bytes,
                     tuple(window), channels)
