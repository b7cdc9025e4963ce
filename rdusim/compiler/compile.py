"""compile(graph, arch, policy) -> Plan."""

from __future__ import annotations

from types import MappingProxyType

from rdusim.compiler.dataflow import dataflow_nodes
from rdusim.compiler.fusion import partition
from rdusim.compiler.memory import place_tensors
from rdusim.compiler.placement import build_kernel
from rdusim.compiler.plan import Plan
from rdusim.config.arch_rdu import RduArch
from rdusim.config.policy import FusionPolicy
from rdusim.graph.opgraph import OpGraph

DEFAULT_TILES = 64   # tiles each kernel's streams are cut into


def compile_plan(graph: OpGraph, arch: RduArch, policy: FusionPolicy, *, tiles: int = DEFAULT_TILES) -> Plan:
    """Cut ``graph`` (one TP rank's step) into kernels and place each on one socket."""
    if tiles < 1:
        raise ValueError(f"tiles must be >= 1, got {tiles}")
    nodes, consumers = dataflow_nodes(graph, policy)
    tiers = place_tensors(nodes, arch)
    groups = partition(nodes, consumers, tiers, arch, policy, tiles)
    kernels = []
    for i, group in enumerate(groups):
        name = group[0].name if len(group) == 1 else f"k{i}.{group[0].name}..{group[-1].name}"
        kernels.append(build_kernel(name, group, consumers, tiers, arch, tiles))
    return Plan(graph.name, policy, tiles, tuple(kernels),
                MappingProxyType({k: v.value for k, v in tiers.items()}))
