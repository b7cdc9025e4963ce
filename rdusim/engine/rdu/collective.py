"""Collectives over the P2P links between sockets: the plan's collective as the runtime runs it.

The algorithm (ring, tree, one-shot; the fastest for the size unless the arch fixes one)
and its cost come from the shared mechanism in ``rdusim.engine.collectives``, over the
socket's P2P fabric (``links.p2p``: bandwidth, step latency, ports, topology) with the
runtime's per-collective cost (``collectives.base_latency_s``).
"""

from __future__ import annotations

from rdusim.compiler.plan import Collective
from rdusim.config.arch_common import CollectiveSpec, Fabric
from rdusim.engine.collectives import CollectiveCost, CollectiveOp, collective_cost


def plan_collective_cost(c: Collective, fabric: Fabric, spec: CollectiveSpec) -> CollectiveCost:
    return collective_cost(CollectiveOp(c.kind), c.ranks, c.message_bytes, fabric, spec)
