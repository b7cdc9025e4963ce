"""The shared hardware a kernel's processes contend for, built from an RduArch."""

from __future__ import annotations

from dataclasses import dataclass

from rdusim.compiler.plan import Kernel, StageKind, Tier
from rdusim.config.arch_common import CollectiveSpec, Fabric, Link
from rdusim.config.arch_rdu import RduArch


@dataclass(frozen=True)
class SocketHw:
    """Rates and latencies of one socket, in the units the pipeline uses."""

    tier_bw: dict          # Tier -> achievable bytes/s (shared by all streams of the kernel)
    tier_latency: dict     # Tier -> seconds before the first byte of a stream arrives
    agcu_bw: float         # bytes/s of one AGCU
    pmu_bw: float          # bytes/s of one PMU
    p2p: Fabric
    d2d: Link
    pcu_count: int
    pmu_count: int
    hbm_peak_bw: float
    collectives: CollectiveSpec

    @classmethod
    def of(cls, arch: RduArch) -> "SocketHw":
        s = arch.socket
        return cls(
            tier_bw={Tier.HBM: s.hbm.effective_bandwidth_bytes_per_s, Tier.DDR: s.ddr.effective_bandwidth_bytes_per_s,
                     Tier.HOST: arch.links.pcie.effective_bandwidth_bytes_per_s},
            tier_latency={Tier.HBM: s.hbm.latency_s, Tier.DDR: s.ddr.latency_s, Tier.HOST: arch.links.pcie.latency_s},
            agcu_bw=s.agcu.bandwidth_bytes_per_s, pmu_bw=s.pmu.bandwidth_bytes_per_s,
            p2p=arch.links.p2p, d2d=s.d2d, pcu_count=s.pcu.count, pmu_count=s.pmu.count,
            hbm_peak_bw=s.hbm.bandwidth_bytes_per_s, collectives=arch.collectives)

    def for_kernel(self, kernel: Kernel) -> "SocketHw":
        """This socket as ``simulate_kernel`` sees it for ``kernel``: a tier's rate and
        latency only if one of its streams moves bytes on that tier, the AGCU rate only
        with off-chip streams, the PMU rate only for stages that read, the P2P link and the
        collective library only for collective stages, the D2D link only for edges that cross the dies; the rest
        None. The kernel is simulated on this view and its cache key is the view's
        content, so a parameter the simulation reads cannot be missing from the key (it
        would read None and fail), and a sweep over DDR bandwidth reuses every kernel that
        touches only HBM."""
        uses = kernel_uses(kernel)
        views = self.__dict__.setdefault("_views", {})    # frozen: one view object per kind of use
        view = views.get(uses)
        if view is None:
            view = views[uses] = self._view(*uses)
        return view

    def _view(self, tiers: frozenset, streams: bool, reads: bool, p2p: bool, d2d: bool) -> "SocketHw":
        return SocketHw(
            tier_bw={t: (v if t in tiers else None) for t, v in self.tier_bw.items()},
            tier_latency={t: (v if t in tiers else None) for t, v in self.tier_latency.items()},
            agcu_bw=self.agcu_bw if streams else None, pmu_bw=self.pmu_bw if reads else None,
            p2p=self.p2p if p2p else None, d2d=self.d2d if d2d else None,
            pcu_count=None, pmu_count=None, hbm_peak_bw=None, collectives=self.collectives if p2p else None)


def kernel_uses(kernel: Kernel) -> tuple:
    """(tiers its streams move bytes on, any off-chip stream, any stage that reads, any
    collective stage, any edge across the dies), computed once per kernel object."""
    got = kernel.__dict__.get("_hw_uses")
    if got is None:
        tiers, streams, reads, p2p, d2d = set(), False, False, False, False
        for s in kernel.stages:
            for st in s.streams:
                streams = True
                tiers.add(st.tier)
            reads = reads or s.in_bytes > 0
            p2p = p2p or s.kind == StageKind.COLLECTIVE
            d2d = d2d or any(s.edge_d2d)
        got = kernel.__dict__["_hw_uses"] = (frozenset(tiers), streams, reads, p2p, d2d)
    return got
