"""MoE expert offload (a model workload's ``offload:``): experts as individuals.

Each MoE layer routes each token to its top-k experts, drawn from a skewed popularity
(``routing``: ``uniform`` or ``zipf`` with ``skew``: p(rank r) ~ 1 / (r + 1) ** skew, each
layer's ranking a random permutation) with the run's seeded Generator, or replays a recorded
routing (``trace``: a CSV ``token,layer,expert``, k rows per token and layer; each
replication starts at a random token of it and wraps around; the whole trace is the
calibration set). Experts live in
HBM or where the machine keeps what HBM does not hold (host DRAM, the SN40L's DDR); which
ones are in HBM is a residency policy (``residency``); per expert and step a rule
(``rules``) decides whether a missing expert runs in place (the host CPU, the RDU reading
DDR) or is copied into HBM (rdusim.engine.offload).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Mapping, Optional

from rdusim.config.limits import upto


class RoutingDist(enum.Enum):
    UNIFORM = "uniform"      # every expert of a layer equally likely
    ZIPF = "zipf"            # p(rank r) ~ 1 / (r + 1) ** skew, ranks a random permutation per layer
    TRACE = "trace"          # recorded choices: a CSV of token,layer,expert (k rows per token and layer)


class Residency(enum.Enum):
    STATIC = "static"        # the experts most often chosen on a calibration draw stay in HBM (Fiddler)
    LRU = "lru"              # a copied expert stays in HBM, evicting the least recently used one


class OffloadRule(enum.Enum):
    FIDDLER = "fiddler"                  # per expert and step: in place when that is predicted cheaper than copy + run
    ALWAYS_COPY = "always_copy"          # every missing expert copied into HBM
    ALWAYS_IN_PLACE = "always_in_place"  # every missing expert run where its weights are


@dataclass(frozen=True)
class OffloadSpec:
    routing: RoutingDist = RoutingDist.ZIPF
    skew: float = field(default=1.0, metadata={"ge": 0, "le": 10})
    trace: Optional[str] = None   # routing: trace: the CSV (beside the workload, or in the shipped data)
    residency: tuple[Residency, ...] = (Residency.STATIC, Residency.LRU)
    rules: tuple[OffloadRule, ...] = (OffloadRule.FIDDLER, OffloadRule.ALWAYS_COPY, OffloadRule.ALWAYS_IN_PLACE)
    # per platform: at most this many experts in HBM (all layers together); absent: as many as memory allows
    max_resident_experts: Mapping[str, int] = field(default_factory=dict, metadata={"ge": 0, "le": 10 ** 6})
    calibration_tokens: int = field(default=2048, metadata=upto(10 ** 6))
    # in-place experts (the CPU) run beside the device's experts of their layer (Fiddler runs both at once);
    # false: after them
    overlap_in_place: bool = False
    replications: int = field(default=5, metadata={"ge": 2, "le": 1000})   # independent routings (95% CIs)

    def __post_init__(self) -> None:
        if not self.residency:
            raise ValueError("residency", "at least one residency policy", [])
        if not self.rules:
            raise ValueError("rules", "at least one rule", [])
        if (self.routing is RoutingDist.TRACE) != (self.trace is not None):
            raise ValueError("trace", "a CSV path exactly when routing is trace", self.trace)
