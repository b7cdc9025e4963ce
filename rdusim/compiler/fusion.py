"""Partitioning the dataflow graph into kernels.

UNFUSED: every real op is its own kernel (reshapes stay views; transposes are passes).
FUSED: consecutive ops of one decoder layer (or one run of non-layer ops) join one
streaming kernel while the tile's resources allow; the fusion scope is one layer, the
unit the compiler builds once and the runtime calls once per layer. When a layer does
not fit (stage buffers plus resident operands exceed the PMUs, or more stages than
PCUs) it is split greedily in pipeline order, which gives the fewest kernels for a
chain.

Fewest kernels is not always fastest. Every stage of a kernel holds at least one PCU
for the whole kernel and PCUs come in whole units, so a long fused layer spreads a
small socket's PCUs thinner than a few shorter kernels do: with 260 PCUs, Llama-2-70B's
4K-prefill layer fused into one 17-stage kernel has its busiest stage 4.6% above the
work / PCUs ideal (nine small stages hold a PCU each), split into three kernels (64 KiB
PMUs) only 0.9% above. When such a layer is compute-bound (HBM nearly idle) the split's
extra HBM traffic and launches cost nothing, so smaller PMUs can make it faster. That is
the model's physics (the same trade a real compiler faces when it decides how much to
fuse), not an error; see also the tile-granularity note in ``rdusim.engine.rdu.pipeline``,
which makes the effect look larger at coarse tiles.
"""

from __future__ import annotations

from typing import Mapping

from rdusim.compiler.dataflow import Node
import math

from rdusim.compiler.placement import DEFAULT_BUFFERING, Buffering, capacity_bytes, draft_stage, stage_kind
from rdusim.compiler.plan import StageKind, Tier
from rdusim.compiler.target import CompileTarget
from rdusim.config.policy import FusionPolicy


def partition(nodes: tuple[Node, ...], consumers: Mapping[str, tuple[str, ...]], tiers: Mapping[str, Tier],
              arch: CompileTarget, policy: FusionPolicy, tiles: int,
              buffering: Buffering = DEFAULT_BUFFERING) -> list[list[Node]]:
    if policy == FusionPolicy.UNFUSED:
        return [[n] for n in nodes]
    nodes_by_name = {n.name: n for n in nodes}
    groups: list[list[Node]] = []
    sock = arch.socket
    for run in _layer_runs(nodes):
        current: dict[str, int] = {}
        pmus = pcus = 0
        for n in run:
            # what the op adds if it joins (its output counted as leaving: an upper bound)
            d = draft_stage(n, current, consumers, tiers, assume_written=True)
            add_pmus = math.ceil(capacity_bytes(d, tiles, buffering) / sock.pmu.capacity_bytes)
            add_pcus = 1 if stage_kind(n) == StageKind.COMPUTE else 0
            if current and (pmus + add_pmus > sock.pmu.count or pcus + add_pcus > sock.pcu.count):
                groups.append([nodes_by_name[k] for k in current])
                current, pmus, pcus = {}, 0, 0
                d = draft_stage(n, current, consumers, tiers, assume_written=True)
                add_pmus = math.ceil(capacity_bytes(d, tiles, buffering) / sock.pmu.capacity_bytes)
            current[n.name] = len(current)
            pmus, pcus = pmus + add_pmus, pcus + add_pcus
        if current:
            groups.append([nodes_by_name[k] for k in current])
    return groups


def _layer_runs(nodes: tuple[Node, ...]) -> list[list[Node]]:
    runs: list[list[Node]] = []
    for n in nodes:
        if runs and runs[-1][-1].layer == n.layer:
            runs[-1].append(n)
        else:
            runs.append([n])
    return runs
