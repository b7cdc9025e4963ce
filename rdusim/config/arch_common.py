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
    """One level of memory on one socket/device (or the host).

    ``reserved_bytes`` is what a real system keeps back from its users on this tier (OS,
    runtime, program binaries, pinned staging buffers, driver contexts); what models may
    use is ``usable_bytes`` (rdusim.memory applies the one rule to every run)."""

    capacity_bytes: float = field(metadata=positive())
    bandwidth_bytes_per_s: float = field(metadata=positive())
    efficiency: float = field(default=1.0, metadata={"gt": 0, "le": 1})
    latency_s: float = field(default=0.0, metadata={"ge": 0})
    reserved_bytes: float = field(default=0.0, metadata={"ge": 0})

    def __post_init__(self):
        if self.reserved_bytes >= self.capacity_bytes:
            raise ValueError("reserved_bytes", f"less than capacity_bytes ({self.capacity_bytes:g})",
                             self.reserved_bytes)

    @property
    def usable_bytes(self) -> float:
        """Capacity less the reserve: the bytes models, caches and activations may occupy."""
        return self.capacity_bytes - self.reserved_bytes

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
