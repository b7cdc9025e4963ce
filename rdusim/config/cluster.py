"""Clusters: N nodes of one machine joined by an inter-node network (clusters/*.yaml).

A cluster file names its node (an arch file), how many nodes, and the network between
them per socket/GPU, every number ``{value, source}`` like an arch file::

    name: dgx_h100_x2
    node: arch/dgx_h100.yaml
    nodes: {value: 2, source: "..."}
    topology: rail_optimized
    network:                    # one NIC per socket/GPU, per direction
      bandwidth_bytes_per_s: {value: 5.0e+10, source: "..."}
      latency_s: {value: 5.0e-6, source: "..."}
      efficiency: {value: 0.9, source: "..."}

Topologies: ``rail_optimized`` -- device i of every node sits on the same leaf switch (rail),
so a stage-to-stage activation send goes device i -> device i, every device over its own
NIC at once; ``shared`` -- the node's devices share one uplink of ``network`` bandwidth.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Optional

from rdusim.config.arch import ArchSpec, load_arch
from rdusim.config.arch_common import Link, NetworkTopology, NodeSpan
from rdusim.config.machine_cost import PriceSpec
from rdusim.config.strict import Ctx, build, positive
from rdusim.config.yamlio import apply_overrides, load_yaml
from rdusim.errors import InputError
from rdusim.paths import DATA_ROOT

# where a cluster's ``node:`` arch path is looked for first: the shipped data (the checkout, or
# the copies inside an installed wheel, as every other shipped path), then beside the cluster file
REPO_ROOT = DATA_ROOT


Topology = NetworkTopology      # one enum: the collectives layer reads it too (arch_common.NodeSpan)


@dataclass(frozen=True)
class _ClusterFile:
    name: str
    node: str
    nodes: int = field(metadata=positive())
    network: Link
    topology: Topology = Topology.RAIL_OPTIMIZED
    description: str = ""
    price: Optional[PriceSpec] = None      # per node-hour (or device-hour); absent: the node arch's


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    node: ArchSpec
    nodes: int
    network: Link
    topology: Topology
    description: str = ""
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), compare=False)
    price: Optional[PriceSpec] = None

    @property
    def price_per_node_hour_usd(self) -> Optional[float]:
        """One node's price per hour: the cluster file's ``price:`` (a node price, else its device
        price x devices), else the node arch's (None: no published price)."""
        p = self.price
        if p is None:
            return self.node.price_per_node_hour_usd
        if p.per_node_hour_usd is not None:
            return p.per_node_hour_usd
        return p.per_device_hour_usd * self.devices_per_node

    @property
    def devices_per_node(self) -> int:
        return self.node.devices_per_node

    @property
    def span(self) -> NodeSpan:
        """What a collective spanning this cluster's nodes crosses."""
        return NodeSpan(self.devices_per_node, self.nodes, self.network, self.topology)

    def spanning_arch(self) -> ArchSpec:
        """The node's machine with its collective library able to span the cluster's nodes:
        a tensor-parallel group of more devices than a node holds runs its all-reduces
        hierarchically over the network (rdusim.engine.collectives_cluster). The node's
        own numbers (memory, compute, links) are unchanged."""
        arch = self.node
        return dataclasses.replace(arch, collectives=dataclasses.replace(arch.collectives, span=self.span))

    def send_s(self, nbytes: float, devices: int) -> float:
        """Time to move ``nbytes`` from one node to the next, split over ``devices`` senders."""
        if nbytes <= 0:
            return 0.0
        lanes = devices if self.topology == Topology.RAIL_OPTIMIZED else 1
        return self.network.latency_s + nbytes / (lanes * self.network.effective_bandwidth_bytes_per_s)


def load_cluster(path: str | Path, overrides: Iterable[tuple[str, Any]] = ()) -> ClusterSpec:
    file = str(path)
    if not Path(path).is_file():
        raise InputError(file, "(file)", "a cluster YAML file", file)
    raw = apply_overrides(load_yaml(path), overrides, file, sourced=True)
    if not isinstance(raw, dict):
        raise InputError(file, "(top level)", "a mapping", raw)
    node = raw.get("node")
    ctx = Ctx(file=file, sourced=True)
    spec = build(_ClusterFile, raw, ctx)
    node_path = Path(node) if Path(node).is_absolute() else REPO_ROOT / node
    if not node_path.is_file():
        node_path = Path(file).parent / node
    if not node_path.is_file():
        raise InputError(file, "node", "a path to an arch YAML file", node)
    arch = load_arch(node_path)
    return ClusterSpec(spec.name, arch, spec.nodes, spec.network, spec.topology, spec.description,
                       MappingProxyType(dict(ctx.sources)), price=spec.price)
