"""Collectives as algorithms over a machine's fabric, shared by the GPU and RDU engines.

A collective of ``n`` ranks on a message of ``M`` bytes (the full tensor each rank
ends with) runs as a sequence of steps. Every step pays the fabric's step latency
(one hop, or one pass through the switch); the bytes a rank must push through its
links travel at the fabric's effective per-rank bandwidth. Every collective also
pays the library's fixed start/sync cost (``CollectiveSpec.base_latency_s``; in-network
reduction may have its own, ``switch_reduce_latency_s``). A library without a one-shot
all-reduce (NCCL) never picks it.

| algorithm      | all-reduce steps, bytes sent per rank  | all-gather steps, bytes | needs            |
|----------------|----------------------------------------|-------------------------|------------------|
| ring           | 2(n-1), 2(n-1)/n M                     | n-1, (n-1)/n M          | any topology     |
| tree           | 2 ceil(log2 n), 2 M (double binary     | (none)                  | switch, full mesh|
|                | tree: up one tree, down the other;     |                         |                  |
|                | NCCL's tree algBw is half its busBw)   |                         |                  |
| one_shot       | 1, (n-1) M (whole message to each peer)| 1, (n-1)/n M            | switch, full mesh|
| switch_reduce  | 2, M (to the switch and back; reduced  | (none)                  | switch with      |
|                | in the network, NVLink SHARP / NVLS)   |                         | in-network reduce|

Ring steps are hops between neighbours, so a ring runs on any wiring; tree and
one-shot need every pair one step apart.

Bandwidth: a switch (NVSwitch) gives every rank its full bandwidth whatever the
pattern, and a ring topology's ring algorithm drives both of its ports (two
counter-rotating rings). A full mesh is ``ports`` separate links of 1/ports of the
bandwidth each, and an algorithm only gets the ports it drives at once: one-shot
drives the n-1 links to its peers; ring runs one ring per direction of each of the
edge-disjoint Hamiltonian cycles of the mesh (2 floor((n-1)/2) out-ports, 1 for two ranks); the
double binary tree sends its half-messages over 4 (to a parent and two children
in one tree, to a parent in the other; at most n-1). A fixed algorithm that has no all-gather
form (tree, switch_reduce) runs all-gathers as a ring. With ``algorithm: auto`` the fastest for
the message size is taken, as NCCL's tuner does; ties go to fewer steps.
"""

from __future__ import annotations

import math

from rdusim.config.arch_common import CollectiveAlgorithm, CollectiveSpec, Fabric, Topology
from rdusim.engine.collective_cost import ZERO, CollectiveCost, CollectiveOp, LatencyPlusWire  # noqa: F401  (re-exported)
from rdusim.engine.collectives_cluster import spanning_cost, span_shape


def available(op: CollectiveOp, fabric: Fabric, spec: CollectiveSpec | None = None) -> tuple[CollectiveAlgorithm, ...]:
    """The algorithms ``fabric``'s wiring can run for ``op`` (and ``spec``'s library has)."""
    algs = fabric.algorithms(reduce=op == CollectiveOp.ALLREDUCE)
    if spec is not None and not spec.one_shot:
        algs = tuple(a for a in algs if a != CollectiveAlgorithm.ONE_SHOT)
    return algs


def _shape(alg: CollectiveAlgorithm, op: CollectiveOp, n: int, m: float) -> tuple[int, float]:
    """(steps, bytes sent per rank) of ``alg``."""
    if op == CollectiveOp.ALLGATHER:
        if alg == CollectiveAlgorithm.RING:
            return n - 1, (n - 1) / n * m
        return 1, (n - 1) / n * m                          # one-shot: each shard to every peer
    if alg == CollectiveAlgorithm.RING:
        return 2 * (n - 1), 2 * (n - 1) / n * m
    if alg == CollectiveAlgorithm.TREE:
        return 2 * math.ceil(math.log2(n)), 2.0 * m
    if alg == CollectiveAlgorithm.ONE_SHOT:
        return 1, (n - 1) * m
    return 2, m                                            # switch_reduce


def algorithm_cost(alg: CollectiveAlgorithm, op: CollectiveOp, ranks: int, message_bytes: float,
                   fabric: Fabric, spec: CollectiveSpec) -> CollectiveCost:
    """Cost of running ``op`` with ``alg`` (which must be available on ``fabric``)."""
    if alg not in available(op, fabric):
        raise ValueError(f"{alg.value} {op.value} cannot run on a {fabric.topology.value} fabric"
                         f"{' with in-network reduction' if fabric.in_network_reduction else ''}; "
                         f"available: {[a.value for a in available(op, fabric)]}")
    if ranks <= 1:
        return ZERO
    fabric.check_ranks(ranks)
    steps, wire = _shape(alg, op, ranks, float(message_bytes))
    return CollectiveCost(alg, steps, spec.fixed_latency_s(alg) + steps * fabric.latency_s, wire,
                          fabric.effective_bandwidth_bytes_per_s * _ports_share(alg, fabric, ranks))


def _ports_share(alg: CollectiveAlgorithm, fabric: Fabric, n: int) -> float:
    """Fraction of a rank's fabric bandwidth that ``alg`` can drive at once."""
    if fabric.topology != Topology.FULL_MESH:
        return 1.0
    driven = {CollectiveAlgorithm.ONE_SHOT: n - 1, CollectiveAlgorithm.RING: max(1, 2 * ((n - 1) // 2)),
              CollectiveAlgorithm.TREE: 4}[alg]
    return min(driven, n - 1, fabric.ports) / fabric.ports


def collective_cost(op: CollectiveOp, ranks: int, message_bytes: float, fabric: Fabric,
                    spec: CollectiveSpec) -> CollectiveCost:
    """The collective as the machine's library runs it: its fixed algorithm, or the
    fastest available one (``auto``). A group of more ranks than a node holds, when the
    library may span nodes (``spec.span``, a cluster deployment), runs hierarchically
    (:mod:`rdusim.engine.collectives_cluster`)."""
    if ranks <= 1:
        return ZERO
    if spec.span is not None and ranks > spec.span.devices_per_node:
        local, _ = span_shape(spec.span, ranks)
        return spanning_cost(op, ranks, message_bytes, spec.span, node_cost(op, local, message_bytes, fabric, spec))
    return node_cost(op, ranks, message_bytes, fabric, spec)


def node_cost(op: CollectiveOp, ranks: int, message_bytes: float, fabric: Fabric,
              spec: CollectiveSpec) -> CollectiveCost:
    """The collective on ``ranks`` ranks of one node's fabric."""
    if ranks <= 1:
        return ZERO
    if spec.algorithm != CollectiveAlgorithm.AUTO:
        alg = spec.algorithm
        if op == CollectiveOp.ALLGATHER and alg not in available(op, fabric, spec):
            alg = CollectiveAlgorithm.RING        # tree / in-network reduction are all-reduce only
        return algorithm_cost(alg, op, ranks, message_bytes, fabric, spec)
    costs = [algorithm_cost(a, op, ranks, message_bytes, fabric, spec) for a in available(op, fabric, spec)]
    return min(costs, key=lambda c: (c.time_s, c.steps))

