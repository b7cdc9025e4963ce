"""Collectives over ranks that span nodes: hierarchical, each phase on the link it crosses.

A tensor-parallel group of ``n = N x L`` ranks, ``L`` on each of ``N`` nodes
(:class:`rdusim.config.arch_common.NodeSpan`), all-reduces a message of ``M`` bytes in
three phases, as NCCL's and the SambaNova runtime's hierarchical collectives do:

1. inside each node, a reduce-scatter over the node's fabric: every rank ends with the
   node's partial sum of its 1/L shard;
2. across the nodes, an all-reduce of that shard (``M / L`` bytes) among the N ranks that
   hold the same shard, one per node, as a ring over the NICs: 2(N-1) steps, each paying
   the network latency, every rank sending 2(N-1)/N of its shard;
3. inside each node, an all-gather of the reduced shards over the node's fabric.

Phases 1 and 3 together are the node's own all-reduce of ``M`` (a ring all-reduce is
exactly a ring reduce-scatter then a ring all-gather: the same 2(L-1) steps and bytes);
they are charged as the node's library runs an all-reduce of ``M`` on ``L`` ranks
(:func:`rdusim.engine.collectives.collective_cost`: its algorithm, its fixed cost paid once
for the whole collective). So a collective spanning nodes costs the one-node collective
plus the inter-node term::

    inter_s = 2(N-1) x latency + 2(N-1)/N x (M/L) / (B_nic x eff)      (rail-optimised)

Rail-optimised: device i of every node sits on rail i, so the L shards cross the network
in parallel, each over its own device's NIC. ``shared``: the node's L devices share one
uplink of ``B_nic``, so the node's L shards queue on it (bandwidth B_nic / L per device).

An all-gather spanning nodes is phase 2 as a ring all-gather (N-1 steps, (N-1)/N of the
``M/L`` shard) before the node's own all-gather of ``M``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rdusim.config.arch_common import NetworkTopology, NodeSpan
from rdusim.engine.collective_cost import CollectiveCost, CollectiveOp, LatencyPlusWire


@dataclass(frozen=True)
class InterNodeCost(LatencyPlusWire):
    """Phase 2 on one rank: the ring over the NICs."""

    nodes: int
    steps: int
    latency_s: float            # steps x network latency
    wire_bytes: float           # bytes the rank sends over its NIC
    bandwidth_bytes_per_s: float  # the rank's share of the network


@dataclass(frozen=True)
class SpanningCost(CollectiveCost):
    """A collective across nodes: the node's own collective (``intra``) and the inter-node
    ring (``inter``). As a :class:`CollectiveCost` (what both engines read), its latency is
    both phases' latencies, its bytes both phases' bytes and its bandwidth the rate that
    moves them in the two phases' wire time, so ``time_s = intra_s + inter_s`` (an RDU kernel
    record's ``p2p_bytes`` therefore counts the NIC bytes too; ``inter_node_s`` splits the time)."""

    intra: CollectiveCost
    inter: InterNodeCost

    @property
    def intra_s(self) -> float:
        return self.intra.time_s

    @property
    def inter_s(self) -> float:
        return self.inter.time_s


def inter_node_cost(op: CollectiveOp, span: NodeSpan, ranks: int, message_bytes: float) -> InterNodeCost:
    """Phase 2 of a collective of ``ranks`` ranks spanning ``span``'s nodes."""
    local, nodes = span_shape(span, ranks)
    shard = float(message_bytes) / local
    if op == CollectiveOp.ALLREDUCE:
        steps, wire = 2 * (nodes - 1), 2 * (nodes - 1) / nodes * shard
    else:
        steps, wire = nodes - 1, (nodes - 1) / nodes * shard
    lanes = 1 if span.topology == NetworkTopology.RAIL_OPTIMIZED else local    # devices sharing a NIC
    return InterNodeCost(nodes, steps, steps * span.network.latency_s, wire,
                         span.network.effective_bandwidth_bytes_per_s / lanes)


def span_shape(span: NodeSpan, ranks: int) -> tuple[int, int]:
    """(ranks per node, nodes) of a group of ``ranks`` ranks laid over whole nodes."""
    local = span.devices_per_node
    if ranks % local:
        raise ValueError(f"{ranks} ranks across nodes of {local} devices: a group spanning nodes "
                         f"fills whole nodes (a multiple of {local})")
    nodes = ranks // local
    if nodes > span.nodes:
        raise ValueError(f"{ranks} ranks need {nodes} nodes of {local} devices; the cluster has {span.nodes}")
    return local, nodes


def spanning_cost(op: CollectiveOp, ranks: int, message_bytes: float, span: NodeSpan,
                  intra: CollectiveCost) -> SpanningCost:
    """``op`` of ``message_bytes`` over ``ranks`` ranks spanning more than one node of ``span``,
    given ``intra``, the node's own collective of the message on its ranks
    (:func:`rdusim.engine.collectives.collective_cost` computes it and calls this)."""
    inter = inter_node_cost(op, span, ranks, message_bytes)
    wire = intra.wire_bytes + inter.wire_bytes
    wire_s = intra.wire_s + inter.wire_s
    return SpanningCost(intra.algorithm, intra.steps + inter.steps, intra.latency_s + inter.latency_s, wire,
                        wire / wire_s if wire_s > 0 else 1.0, intra, inter)
