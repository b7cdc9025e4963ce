"""Partitioning the dataflow graph into kernels.

UNFUSED: every real op is its own kernel (reshapes stay views; transposes are passes).
FUSED: consecutive ops of one decoder layer (or one run of non-layer ops) join one
streaming kernel while the tile's resources allow; the fusion scope is one layer, the
unit the compiler builds once and the runtime calls once per layer. When a layer does
not fit (stage buffers plus resident operands exceed the PMUs, or more stages than
PCUs) it is split greedily in pipeline order, which gives the fewest kernels for a
chain.
"""

from __future__ import annotations

from typing import Mapping

from rdusim.compiler.dataflow import Node
from rdusim.compiler.placement import fits
from rdusim.compiler.plan import Tier
from rdusim.config.arch_rdu import RduArch
from rdusim.config.policy import FusionPolicy


def partition(nodes: tuple[Node, ...], consumers: Mapping[str, tuple[str, ...]], tiers: Mapping[str, Tier],
              arch: RduArch, policy: FusionPolicy, tiles: int) -> list[list[Node]]:
    if policy == FusionPolicy.UNFUSED:
        return [[n] for n in nodes]
    groups: list[list[Node]] = []
    for run in _layer_runs(nodes):
        current: list[Node] = []
        for n in run:
            if current and not fits(current + [n], consumers, tiers, arch, tiles):
                groups.append(current)
                current = []
            current.append(n)
        if current:
            groups.append(current)
    return groups


def _layer_runs(nodes: tuple[Node, ...]) -> list[list[Node]]:
    runs: list[list[Node]] = []
    for n in nodes:
        if runs and runs[-1][-1].layer == n.layer:
            runs[-1].append(n)
        else:
            runs.append([n])
    return runs
