"""Pieces shared by every machine description: memory tiers, links, fabrics, the kind enum."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Optional

from rdusim.config.strict import positive


class ArchKind(enum.Enum):
    """The machine family an arch file describes (``kind:``); the registration tables
    (rdusim.config.arch.SCHEMAS, rdusim.engine.families.FAMILIES) map it to the family's
    schema and engine. Nothing outside a family asks which one a platform is."""

    RDU = "rdu"
    GPU = "gpu"
    TPU = "tpu"


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


class Topology(enum.Enum):
    """How the ranks of a node are wired to each other."""

    RING = "ring"              # each rank wired only to its neighbours; collectives must hop around
    FULL_MESH = "full_mesh"    # a dedicated link from every rank to every other (ports >= ranks - 1)
    SWITCH = "switch"          # every rank into a switch that joins any pair at the rank's full rate


class CollectiveAlgorithm(enum.Enum):
    """How a collective is run over a fabric (rdusim.engine.collectives)."""

    AUTO = "auto"                    # the fastest available for the message size (NCCL's tuner)
    RING = "ring"                    # 2(n-1) steps of 1/n of the message (all-gather: n-1)
    TREE = "tree"                    # double binary tree: 2 ceil(log2 n) steps, message pipelined
    ONE_SHOT = "one_shot"            # every rank sends its data to every other at once, one step
    SWITCH_REDUCE = "switch_reduce"  # the switch reduces in the network (NVLink SHARP): 2 steps


@dataclass(frozen=True)
class Fabric(Link):
    """The links joining the ranks of a node, per rank.

    ``bandwidth_bytes_per_s`` is what one rank can send per direction over all its
    ``ports`` together; ``latency_s`` is one step between two ranks (a hop, or through
    the switch). ``topology`` decides which collective algorithms can run;
    ``in_network_reduction`` says whether the switch can reduce (SHARP)."""

    ports: int = field(default=1, metadata=positive())
    topology: Topology = Topology.RING
    in_network_reduction: bool = False

    def __post_init__(self) -> None:
        if self.in_network_reduction and self.topology != Topology.SWITCH:
            raise ValueError("in_network_reduction", "false unless topology is switch", True)
        if self.topology == Topology.RING and self.ports > 2:
            raise ValueError("ports", "at most 2 for a ring (one to each neighbour)", self.ports)

    def algorithms(self, *, reduce: bool) -> tuple["CollectiveAlgorithm", ...]:
        """The collective algorithms this wiring can run (all-reduce if ``reduce``, else all-gather):
        ring steps are hops between neighbours, so a ring runs anywhere; tree and one-shot need
        every pair one step apart; switch_reduce needs a switch that reduces."""
        algs = [CollectiveAlgorithm.RING]
        if self.topology in (Topology.SWITCH, Topology.FULL_MESH):
            if reduce:
                algs.append(CollectiveAlgorithm.TREE)
            algs.append(CollectiveAlgorithm.ONE_SHOT)
        if self.in_network_reduction and reduce:
            algs.append(CollectiveAlgorithm.SWITCH_REDUCE)
        return tuple(algs)

    def check_ranks(self, ranks: int) -> None:
        """Raise ValueError(key, expected, found) when the wiring cannot join ``ranks`` ranks."""
        if self.topology == Topology.FULL_MESH and self.ports < ranks - 1:
            raise ValueError("ports", f"at least {ranks - 1} for a full mesh of {ranks}", self.ports)


class NetworkTopology(enum.Enum):
    """How the nodes of a cluster reach each other (``topology`` in clusters/*.yaml)."""

    RAIL_OPTIMIZED = "rail_optimized"   # one NIC per device, same-index devices on one rail
    SHARED = "shared"                   # one uplink per node shared by its devices


@dataclass(frozen=True)
class NodeSpan:
    """The nodes a group of ranks may span beyond its own node: set by a cluster deployment
    (rdusim.config.cluster.ClusterSpec.span), never by an arch file. ``network`` is one
    device's NIC (per direction); ``topology`` says whether each device drives its own NIC
    (rail-optimised) or the node's devices share one uplink of that bandwidth."""

    devices_per_node: int
    nodes: int
    network: Link
    topology: NetworkTopology = NetworkTopology.RAIL_OPTIMIZED

    @property
    def max_ranks(self) -> int:
        return self.devices_per_node * self.nodes

    def nodes_for(self, ranks: int) -> int:
        """Nodes a group of ``ranks`` ranks occupies (whole nodes beyond one)."""
        return 1 if ranks <= self.devices_per_node else -(-ranks // self.devices_per_node)


@dataclass(frozen=True)
class CollectiveSpec:
    """What a machine's collective library does: a fixed cost per collective (kernel or
    primitive start, the synchronisation of all ranks, protocol set-up) and its choice
    of algorithm."""

    base_latency_s: float = field(metadata={"ge": 0})
    algorithm: CollectiveAlgorithm = CollectiveAlgorithm.AUTO
    # the fixed cost of in-network reduction (NVLS: multicast objects, switch
    # synchronisation) when it differs from the ring/tree kernels'; None: base_latency_s
    switch_reduce_latency_s: Optional[float] = field(default=None, metadata={"ge": 0})
    # whether the library has a one-shot all-reduce (NCCL has ring, tree and NVLS only;
    # one-shot is a custom kernel some serving stacks add)
    one_shot: bool = True
    # the nodes beyond this one a collective may span (a cluster deployment sets it; an arch
    # file cannot): a group of more ranks than a node holds runs hierarchically
    # (rdusim.engine.collectives_cluster)
    span: Optional[NodeSpan] = field(default=None, metadata={"internal": True})

    def fixed_latency_s(self, alg: "CollectiveAlgorithm") -> float:
        if alg == CollectiveAlgorithm.SWITCH_REDUCE and self.switch_reduce_latency_s is not None:
            return self.switch_reduce_latency_s
        return self.base_latency_s


def check_collectives(fabric: Fabric, spec: CollectiveSpec, ranks: int, fabric_key: str, spec_key: str) -> None:
    """Cross-field check of a machine's fabric and collective library: ValueError(key, expected, found)."""
    try:
        fabric.check_ranks(ranks)
    except ValueError as exc:
        key, expected, found = exc.args
        raise ValueError(f"{fabric_key}.{key}", expected, found) from None
    algs = tuple(a for a in fabric.algorithms(reduce=True) if spec.one_shot or a != CollectiveAlgorithm.ONE_SHOT)
    if spec.algorithm != CollectiveAlgorithm.AUTO and spec.algorithm not in algs:
        raise ValueError(f"{spec_key}.algorithm",
                         f"auto or one of {[a.value for a in algs]} on a {fabric.topology.value} fabric",
                         spec.algorithm.value)
