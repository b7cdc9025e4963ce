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

    def key(self) -> tuple:
        """Every parameter of the socket (for callers that key on the whole machine)."""
        return (tuple(sorted((k.value, v) for k, v in self.tier_bw.items())),
                tuple(sorted((k.value, v) for k, v in self.tier_latency.items())),
                self.agcu_bw, self.pmu_bw, self.p2p, self.d2d, self.pcu_count, self.pmu_count, self.hbm_peak_bw,
                self.collectives)

    def kernel_key(self, kernel: Kernel) -> tuple:
        """The parameters ``simulate_kernel`` reads for this kernel, and no others: a tier's
        rate and latency only if one of its streams moves bytes on that tier, the AGCU rate
        only with off-chip streams, the PMU rate only for stages that read, the P2P link
        (and the collective library) only for collective stages, the D2D link only for edges that cross the dies. So a
        sweep over DDR bandwidth reuses every kernel that touches only HBM."""
        tiers, streams, reads, p2p, d2d = set(), False, False, False, False
        for s in kernel.stages:
            for st in s.streams:
                streams = True
                tiers.add(st.tier)
            reads = reads or s.in_bytes > 0
            p2p = p2p or s.kind == StageKind.COLLECTIVE
            d2d = d2d or any(s.edge_d2d)
        order = sorted(tiers, key=lambda t: t.value)
        return (tuple((t.value, self.tier_bw[t], self.tier_latency[t]) for t in order),
                self.agcu_bw if streams else None, self.pmu_bw if reads else None,
                (self.p2p, self.collectives) if p2p else None, self.d2d if d2d else None)
