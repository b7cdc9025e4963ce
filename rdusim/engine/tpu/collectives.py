"""Collectives over a TPU slice's 2D torus: bidirectional rings along one or two mesh axes.

A tensor-parallel group lies along whole mesh axes (:meth:`rdusim.config.arch_tpu.TpuArch.mesh_axes`).
Along one axis of ``n`` chips a collective is a ring: an all-reduce is a reduce-scatter
and an all-gather, ``2(n-1)`` steps moving ``1/n`` of the message each; an all-gather
(or a reduce-scatter) ``n-1`` steps. Every chip has two ports on the axis (one to each
neighbour), each ``ici.bandwidth_bytes_per_s`` per direction:

- a closed axis (the ring wraps around, a torus) runs two counter-rotating rings, each on
  half the message, so a chip pushes its ring traffic at twice the port rate;
- an open axis (a line: part of an axis, or a slice without wraparound) runs the ring
  as a line that every chunk crosses out and back, at the rate of one port.

Over two axes (x of ``a`` chips, y of ``b``) an all-reduce of ``M`` bytes is a
reduce-scatter along x, an all-reduce along y of the ``M/a`` each chip then holds, and
an all-gather along x; the message is split in two halves that run the mirrored orders
(x-y-x and y-x-y) at once, so both axes' ports are busy, and the collective ends when the
slower half does. An all-gather over two axes gathers along one axis, then the other
(halves mirrored likewise). Each step pays the hop latency; each collective XLA's fixed
cost (``collectives.base_latency_s``).
"""

from __future__ import annotations

from dataclasses import dataclass

from rdusim.config.arch_common import CollectiveAlgorithm
from rdusim.config.arch_tpu import TpuArch
from rdusim.engine.collectives import ZERO, CollectiveCost, CollectiveOp


@dataclass(frozen=True)
class RingPhase:
    """One ring phase along one axis: its latency steps, the bytes a chip sends, its time on the wire."""

    steps: int
    wire_bytes: float
    wire_s: float


def axis_phase(op: CollectiveOp, n: int, closed: bool, message_bytes: float, port_bytes_per_s: float) -> RingPhase:
    """A ring all-reduce (``ALLREDUCE``) or all-gather / reduce-scatter (``ALLGATHER``) of a
    ``message_bytes`` tensor over ``n`` chips of one axis."""
    if n <= 1:
        return RingPhase(0, 0.0, 0.0)
    steps, sent = (2 * (n - 1), 2 * (n - 1) / n * message_bytes) if op == CollectiveOp.ALLREDUCE \
        else (n - 1, (n - 1) / n * message_bytes)
    rate = 2 * port_bytes_per_s if closed else port_bytes_per_s
    return RingPhase(steps, sent, sent / rate)


def _two_axes(op: CollectiveOp, first: tuple[int, bool], second: tuple[int, bool], m: float,
              bw: float) -> RingPhase:
    """One half's schedule: along ``first``, then ``second`` (then ``first`` again for an all-reduce)."""
    (a, ca), (b, cb) = first, second
    if op == CollectiveOp.ALLREDUCE:
        parts = (axis_phase(CollectiveOp.ALLGATHER, a, ca, m, bw),            # reduce-scatter along first
                 axis_phase(CollectiveOp.ALLREDUCE, b, cb, m / a, bw),
                 axis_phase(CollectiveOp.ALLGATHER, a, ca, m, bw))            # all-gather along first
    else:
        parts = (axis_phase(CollectiveOp.ALLGATHER, a, ca, m / b, bw),
                 axis_phase(CollectiveOp.ALLGATHER, b, cb, m, bw))
    return RingPhase(sum(p.steps for p in parts), sum(p.wire_bytes for p in parts), sum(p.wire_s for p in parts))


def tpu_collective(arch: TpuArch, op: CollectiveOp, ranks: int, message_bytes: float) -> CollectiveCost:
    """One collective of ``ranks`` chips on ``message_bytes`` (the full tensor each chip ends with)."""
    if ranks <= 1:
        return ZERO
    axes = arch.mesh_axes(ranks)
    bw = arch.ici.effective_bandwidth_bytes_per_s
    m = float(message_bytes)
    if len(axes) == 1:
        (n, closed), = axes
        p = axis_phase(op, n, closed, m, bw)
    else:
        h1, h2 = _two_axes(op, axes[0], axes[1], m / 2, bw), _two_axes(op, axes[1], axes[0], m / 2, bw)
        slow = max(h1, h2, key=lambda h: (h.wire_s + h.steps * arch.ici.latency_s, h.steps))
        p = RingPhase(slow.steps, h1.wire_bytes + h2.wire_bytes, slow.wire_s)
    latency = arch.collectives.base_latency_s + p.steps * arch.ici.latency_s
    # bandwidth as the chip's bytes over their time on the wire (time_s = latency + wire_s)
    rate = p.wire_bytes / p.wire_s if p.wire_s > 0 else bw
    return CollectiveCost(CollectiveAlgorithm.RING, p.steps, latency, p.wire_bytes, rate)
