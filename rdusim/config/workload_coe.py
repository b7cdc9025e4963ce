"""Workload kind ``coe``: Composition of Experts serving (a router plus N expert models)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Mapping, Optional

from rdusim.config import limits as L
from rdusim.config.limits import upto
from rdusim.config.execution import ExecutionConfig
from rdusim.config.formats import Formats
from rdusim.config.workload import PlatformSpec


class RoutingKind(enum.Enum):
    UNIFORM = "uniform"   # every expert equally likely
    ZIPF = "zipf"         # p(expert i) ~ 1 / (i + 1) ** skew
    TRACE = "trace"       # expert ids read from a file, one prompt per entry, cycled


class CachePolicy(enum.Enum):
    LRU = "lru"           # evict the least recently used expert
    LFU = "lfu"           # evict the least frequently used expert (ties: least recent)
    STATIC = "static"     # pin the hottest experts; one slot rotates (LRU) for the rest


@dataclass(frozen=True)
class RoutingSpec:
    distribution: RoutingKind = RoutingKind.UNIFORM
    skew: float = field(default=1.0, metadata=upto(L.MAX_SKEW, ge=0))
    trace: Optional[str] = None   # path (repo root or workload folder) of a YAML list of expert ids

    def __post_init__(self) -> None:
        if self.distribution == RoutingKind.TRACE and not self.trace:
            raise ValueError("trace", "a trace file path when distribution is trace", self.trace)
        if self.trace is not None and self.distribution != RoutingKind.TRACE:
            raise ValueError("trace", "no trace file unless distribution is trace (or distribution: trace)",
                             f"{self.trace!r} with distribution {self.distribution.value}")


@dataclass(frozen=True)
class ExpertsSpec:
    model: str
    count: int = field(metadata=upto(L.MAX_EXPERTS))
    formats: Formats = Formats()      # weight / KV-cache / compute formats of every expert


@dataclass(frozen=True)
class RouterSpec:
    model: str
    output_tokens: int = field(default=1, metadata=upto(L.MAX_TOKENS))   # a classifier: one decision token
    formats: Formats = Formats()


@dataclass(frozen=True)
class CacheSpec:
    policy: CachePolicy = CachePolicy.LRU
    prefetch: bool = False        # copy the batch's next expert while the current one runs


class ExpertPlacement(enum.Enum):
    """How a CoE spanning nodes places its experts (rdusim.engine.coe.placement)."""

    ROUND_ROBIN = "round_robin"   # expert e on node e mod k
    POPULARITY = "popularity"     # experts by expected popularity dealt to the nodes in turn (the hottest
                                  # on the router's node), so every node gets a like share of the traffic


@dataclass(frozen=True)
class CoeClusterSpec:
    """A CoE platform spanning the nodes of a cluster (``clusters.<platform>``): the router on
    node 0, the experts placed over the nodes, prompts for an expert on another node sent there
    over the inter-node network."""

    cluster: str                                            # clusters/*.yaml; its node is the platform's arch
    placement: ExpertPlacement = ExpertPlacement.ROUND_ROBIN


@dataclass(frozen=True)
class FootprintSpec:
    """Nodes needed to serve N experts at (close to) the all-in-HBM latency."""

    batch_size: int = field(default=8, metadata=upto(L.MAX_BATCH))
    output_tokens: int = field(default=20, metadata=upto(L.MAX_TOKENS))
    latency_tolerance: float = field(default=0.25, metadata=upto(L.MAX_TOLERANCE, ge=0))
    max_nodes: int = field(default=64, metadata=upto(L.MAX_NODES))
    # platforms whose footprint places the experts over k nodes of a cluster's network (the
    # router on node 0, prompts sent to their expert's node); the others count nodes served alone
    clusters: Mapping[str, CoeClusterSpec] = field(default_factory=dict)


@dataclass(frozen=True)
class CoeWorkload:
    name: str
    kind: str
    router: RouterSpec
    experts: ExpertsSpec
    platforms: Mapping[str, PlatformSpec]
    prompt_tokens: int = field(default=128, metadata=upto(L.MAX_TOKENS))
    output_tokens: tuple[int, ...] = field(default=(20, 200), metadata=upto(L.MAX_TOKENS, gt=None))
    batch_sizes: tuple[int, ...] = field(default=(1, 8), metadata=upto(L.MAX_BATCH, gt=None))
    routing: RoutingSpec = RoutingSpec()
    cache: CacheSpec = CacheSpec()
    batches: int = field(default=40, metadata=upto(L.MAX_SIM_BATCHES))   # CoE batches measured per scenario and replication
    replications: int = field(default=1, metadata=upto(L.MAX_REPLICATIONS))   # independent routings per scenario (95% CIs)
    warmup_batches: int = field(default=10, metadata=upto(L.MAX_SIM_BATCHES, ge=0))  # run first, not measured
    sweep_experts: tuple[int, ...] = field(default=(), metadata=upto(L.MAX_EXPERTS, gt=None))
    sweep_batches: int = field(default=20, metadata=upto(L.MAX_SIM_BATCHES))  # batches per sweep point
    footprint: FootprintSpec = FootprintSpec()
    # platforms spanning the nodes of a cluster (keys: platform names); the others serve on one node
    clusters: Mapping[str, CoeClusterSpec] = field(default_factory=dict)
    execution: ExecutionConfig = ExecutionConfig()   # simulation granularity
    reference: str = ""           # platform the speedups are taken over (default: the first RDU)
    seed: int = field(default=0, metadata=upto(L.MAX_SEED, ge=0))
    description: str = ""

    @property
    def footprint_counts(self) -> list[int]:
        """The expert counts the footprint is found for: every swept count and the workload's."""
        return sorted(set(self.sweep_experts) | {self.experts.count})

    def __post_init__(self) -> None:
        for key, values in (("output_tokens", self.output_tokens), ("batch_sizes", self.batch_sizes),
                            ("sweep_experts", self.sweep_experts)):
            if any(v < 1 for v in values):
                raise ValueError(key, "a list of positive integers", list(values))
        if not self.output_tokens or not self.batch_sizes:
            raise ValueError("batch_sizes", "non-empty lists of batch_sizes and output_tokens",
                             [list(self.batch_sizes), list(self.output_tokens)])
        for name in self.clusters:
            if name not in self.platforms:
                raise ValueError(f"clusters.{name}", f"one of the platforms {sorted(self.platforms)}", name)
        for name in self.footprint.clusters:
            if name not in self.platforms:
                raise ValueError(f"footprint.clusters.{name}", f"one of the platforms {sorted(self.platforms)}", name)
        if self.reference and self.reference not in self.platforms:
            raise ValueError("reference", f"one of the platforms {sorted(self.platforms)}", self.reference)
