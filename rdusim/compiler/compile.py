"""compile(graph, arch, policy) -> Plan."""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping, Sequence

from rdusim.compiler.dataflow import Node, dataflow_nodes
from rdusim.compiler.fusion import partition
from rdusim.compiler.memory import place_tensors, workspace_bytes
from rdusim.compiler.placement import DEFAULT_BUFFERING, Buffering, build_kernel, group_key
from rdusim.compiler.plan import Kernel, Plan, Tier
from rdusim.compiler.target import CompileTarget
from rdusim.config.arch_rdu import RduArch
from rdusim.config.policy import FusionPolicy
from rdusim.graph.opgraph import OpGraph

DEFAULT_TILES = 64   # tiles each kernel's streams are cut into


def compile_plan(graph: OpGraph, arch: RduArch | CompileTarget, policy: FusionPolicy, *,
                 tiles: int = DEFAULT_TILES, buffering: Buffering = DEFAULT_BUFFERING) -> Plan:
    """Cut ``graph`` (one TP rank's step) into kernels and place each on one socket."""
    if tiles < 1:
        raise ValueError(f"tiles must be >= 1, got {tiles}")
    arch = CompileTarget.of(arch)
    nodes, consumers, groups = _partitioned(graph, arch, policy, tiles, buffering)
    # the workspace is what these kernels materialise (rdusim.workspace); the rest of HBM holds tensors
    tiers = place_tensors(nodes, arch, workspace_bytes(graph.ops, groups))
    return Plan(graph.name, policy, tiles, tuple(place_groups(groups, consumers, tiers, arch, tiles, buffering)),
                MappingProxyType({k: v.value for k, v in tiers.items()}))


def _partitioned(graph: OpGraph, arch: CompileTarget, policy: FusionPolicy, tiles: int, buffering: Buffering):
    """The graph's dataflow nodes, their consumers and the kernels they are cut into. The
    partition reads sizes and the socket's PCUs and PMUs, never where a tensor is placed
    (a stage's buffers are the same whichever tier feeds it), so it comes before placement."""
    nodes, consumers = dataflow_nodes(graph, policy)
    return nodes, consumers, partition(nodes, consumers, {}, arch, policy, tiles, buffering)


def kernel_ops(graph: OpGraph, arch: RduArch | CompileTarget, policy: FusionPolicy, *,
               tiles: int = DEFAULT_TILES, buffering: Buffering = DEFAULT_BUFFERING) -> tuple[tuple[str, ...], ...]:
    """The op names of each kernel :func:`compile_plan` cuts ``graph`` into, in launch order
    (what the memory check reads; the ops of no kernel are views)."""
    _, _, groups = _partitioned(graph, CompileTarget.of(arch), policy, tiles, buffering)
    return tuple(tuple(n.name for n in g) for g in groups)


def kernel_name(index: int, ops: Sequence[str]) -> str:
    """A kernel's name: its op's for one op, else its index and its first and last ops."""
    return ops[0] if len(ops) == 1 else f"k{index}.{ops[0]}..{ops[-1]}"


def place_groups(groups: list[list[Node]], consumers: Mapping[str, tuple[str, ...]], tiers: Mapping[str, Tier],
                 arch: CompileTarget, tiles: int, buffering: Buffering = DEFAULT_BUFFERING) -> list[Kernel]:
    """Each group of ops placed as one kernel, in order."""
    kernels = []
    built: dict[tuple, Kernel] = {}      # structurally identical groups (repeated layers) placed once
    for i, group in enumerate(groups):
        name = kernel_name(i, [n.name for n in group])
        key = group_key(group, consumers, tiers)
        same = built.get(key)
        if same is None:
            kernel = built[key] = build_kernel(name, group, consumers, tiers, arch, tiles, buffering)
        else:
            kernel = renamed(same, name, group)
        kernels.append(kernel)
    return kernels


def renamed(kernel: Kernel, name: str, group: list[Node]) -> Kernel:
    """A placed kernel reused for a structurally identical group of other ops."""
    layers = {n.layer for n in group}
    return kernel.renamed(name, tuple(n.name for n in group), layer=layers.pop() if len(layers) == 1 else -1)
