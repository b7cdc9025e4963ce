"""Collectives over the P2P links between sockets: the cost of one message.

Two algorithms, and the runtime picks the faster for each message size, as collective
libraries do: a ring (2(p-1) latency steps, 2(p-1)/p of the message over each link;
best for large messages) and a one-shot exchange (every socket sends its whole
message to every other one at once and reduces locally: one latency step, (p-1)
messages over the socket's links; best for small, latency-bound messages).
"""

from __future__ import annotations

from dataclasses import dataclass

from rdusim.compiler.plan import Collective
from rdusim.config.arch_common import Link


@dataclass(frozen=True)
class CollectiveCost:
    latency_s: float        # paid once per collective (pipelined tiles pay it once)
    wire_bytes: float       # bytes each socket pushes through its P2P port

    def time_s(self, link: Link) -> float:
        return self.latency_s + self.wire_bytes / link.effective_bandwidth_bytes_per_s


def collective_cost(c: Collective, link: Link) -> CollectiveCost:
    p = c.ranks
    if p <= 1:
        return CollectiveCost(0.0, 0.0)
    if c.kind == "allgather":
        ring = CollectiveCost((p - 1) * link.latency_s, (p - 1) / p * c.message_bytes)
        one = CollectiveCost(link.latency_s, (p - 1) / p * c.message_bytes)
    else:
        ring = CollectiveCost(2 * (p - 1) * link.latency_s, 2 * (p - 1) / p * c.message_bytes)
        one = CollectiveCost(link.latency_s, (p - 1) * c.message_bytes)
    return min((ring, one), key=lambda k: (k.time_s(link), k.latency_s))
