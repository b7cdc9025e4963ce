"""Pieces shared by every machine description: memory tiers, links, the kind enum."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from rdusim.config.strict import positive


class ArchKind(enum.Enum):
    RDU = "rdu"
    GPU = "gpu"


@dataclass(frozen=True)
class MemoryTier:
    """One level of memory on one socket/device (or the host)."""

    capacity_bytes: float = field(metadata=positive())
    bandwidth_bytes_per_s: float = field(metadata=positive())
    efficiency: float = field(default=1.0, metadata={"gt": 0, "le": 1})
    latency_s: float = field(default=0.0, metadata={"ge": 0})

    @property
    def effective_bandwidth_bytes_per_s(self) -> float:
        return self.bandwidth_bytes_per_s * self.efficiency


@dataclass(frozen=True)
class Link:
    """A point-to-point or shared link: bandwidth per direction and a fixed latency."""

    bandwidth_bytes_per_s: float = field(metadata=positive())
    latency_s: float = field(default=0.0, metadata={"ge": 0})
    efficiency: float = field(default=1.0, metadata={"gt": 0, "le": 1})

    @property
    def effective_bandwidth_bytes_per_s(self) -> float:
        return self.bandwidth_bytes_per_s * self.efficiency

    def transfer_time_s(self, nbytes: float) -> float:
        return self.latency_s + nbytes / self.effective_bandwidth_bytes_per_s if nbytes > 0 else 0.0
