"""What a collective costs one rank: the operation, a latency-plus-wire cost and the
cost record both engines read (:mod:`rdusim.engine.collectives` computes it on one node's
fabric, :mod:`rdusim.engine.collectives_cluster` across nodes)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from rdusim.config.arch_common import CollectiveAlgorithm


class CollectiveOp(enum.Enum):
    ALLREDUCE = "allreduce"
    ALLGATHER = "allgather"


class LatencyPlusWire:
    """A cost paid as ``latency_s`` plus ``wire_bytes`` at ``bandwidth_bytes_per_s`` (the
    fields of the dataclasses that take it on)."""

    latency_s: float
    wire_bytes: float
    bandwidth_bytes_per_s: float

    @property
    def wire_s(self) -> float:
        return self.wire_bytes / self.bandwidth_bytes_per_s if self.wire_bytes else 0.0

    @property
    def time_s(self) -> float:
        return self.latency_s + self.wire_s


@dataclass(frozen=True)
class CollectiveCost(LatencyPlusWire):
    """One collective on one rank, as the chosen algorithm runs it."""

    algorithm: CollectiveAlgorithm
    steps: int                   # latency steps (hops)
    latency_s: float             # base + steps x step latency
    wire_bytes: float            # bytes each rank pushes through its links
    bandwidth_bytes_per_s: float  # the rank's effective fabric bandwidth


ZERO = CollectiveCost(CollectiveAlgorithm.RING, 0, 0.0, 0.0, 1.0)
