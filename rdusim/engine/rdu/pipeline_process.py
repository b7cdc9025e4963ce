"""The kernel pipeline's processes, written once (see :mod:`rdusim.engine.rdu.pipeline`).

Every stage, load / write / resident stream and D2D crossing of a kernel is a process: a
generator that does its own bookkeeping and asks its loop for the five things it waits
on, through the loop's :class:`Ops`:

- ``after(me, now, delay)``: resume at ``now + delay``;
- ``use(me, channel, now, service)``: queue for a shared FCFS channel (a memory tier, the
  P2P port, the D2D link) for ``service`` seconds;
- ``take(buffer, me)`` / ``give(buffer, me, name)``: get a tile from / put a tile into a
  bounded stage buffer (``took`` / ``gave`` after the process resumes);
- ``wait_resident(group, me)`` / ``loaded(member, name, now)``: a stage waits for its
  resident operands' loads, each of which says when it is done.

Each call answers whether the process must suspend (``now = yield now``, the loop sends
the time back when it resumes it) or, for the timed ones, the time it carries on at
without suspending. Two loops drive the same processes: the SimPy model
(:mod:`rdusim.engine.rdu.pipeline_events`, the reference: every wait is a SimPy event)
and the fast loop (:mod:`rdusim.engine.rdu.pipeline_fast`: SimPy's event order without its
per-event cost). Both compute every time with the same operations in the same order, so
their results are bit-identical (tests/test_pipeline_fast.py).
"""

from __future__ import annotations

from typing import Any, Protocol

from rdusim.compiler.plan import Kernel
from rdusim.engine.rdu.hardware import SocketHw
from rdusim.engine.rdu.kernel_run import collective_terms, stream_link, tile_time


class Ops(Protocol):
    log: bool

    def buffer(self, depth: int) -> Any: ...
    def channel(self) -> Any: ...
    def resident_group(self) -> Any: ...
    def join(self, group: Any) -> Any: ...
    def after(self, me, now: float, delay: float) -> float | None: ...
    def use(self, me, channel, now: float, service: float) -> float | None: ...
    def take(self, buf, me) -> bool: ...
    def took(self, buf) -> None: ...
    def give(self, buf, me, name: str) -> bool: ...
    def gave(self, buf, name: str) -> None: ...
    def wait_resident(self, group, me) -> None: ...
    def loaded(self, member, name: str, now: float) -> None: ...
    def note(self, what: str, now: float) -> None: ...


class Tally:
    """What the processes add up: bytes and busy time per tier, per-stage busy time and
    window, collective seconds, D2D and P2P bytes, the channels, and the processes' ends."""

    def __init__(self, kernel: Kernel, hw: SocketHw, ops: Ops):
        self.tiers = list(hw.tier_bw)
        self.tier_index = {t: x for x, t in enumerate(self.tiers)}
        self.chans = [ops.channel() for _ in self.tiers]
        self.p2p, self.d2d = ops.channel(), ops.channel()
        self.moved = [0.0] * len(self.tiers)
        self.tier_busy = [0.0] * len(self.tiers)
        self.busy = [0.0] * len(kernel.stages)
        self.window = [(0.0, 0.0)] * len(kernel.stages)
        self.acc = [0.0, 0.0, 0.0]          # collective seconds, D2D bytes, P2P bytes
        self.fin = [0.0, 0]                 # when the last process ended, processes still running

    def channel_windows(self) -> dict:
        names = [t.value for t in self.tiers] + ["p2p", "d2d"]
        return {name: ch.window for name, ch in zip(names, self.chans + [self.p2p, self.d2d]) if ch.window}


def _non_negative(kernel: Kernel, *times: float) -> None:
    """A negative delay is refused up front, by both loops (the compiler never makes one:
    a negative rate, byte count or time is an input error upstream)."""
    for x in times:
        if x < 0:
            raise ValueError(f"kernel {kernel.name}: negative delay {x}")


def processes(kernel: Kernel, hw: SocketHw, n: int, ops: Ops) -> tuple[list, Tally]:
    """The kernel's processes in creation order (edges and streams stage by stage, then the
    stages), not started, and the tally they add to."""
    k = kernel
    tally = Tally(k, hw, ops)
    after, use, take, took, give, gave = ops.after, ops.use, ops.take, ops.took, ops.give, ops.gave
    moved, tier_busy, busy, window, acc, fin = (tally.moved, tally.tier_busy, tally.busy, tally.window,
                                                 tally.acc, tally.fin)
    log, note = ops.log, ops.note

    def stream(st, nbytes, inp, out, member, name):
        """A load (``out``), write (``inp``) or resident (``member``) stream, tile after tile:
        the first tile pays the tier's latency; each queues for the tier (FCFS), then for
        the AGCUs' extra time, if any."""
        me = yield
        now = 0.0
        lat, tier, service, extra = stream_link(hw, st, nbytes)
        _non_negative(k, lat, service)
        x = tally.tier_index[tier]
        ch = tally.chans[x]
        for t in range(n):
            if inp is not None:
                if take(inp, me):
                    now = yield now
                took(inp)
            if t == 0 and lat:
                tt = after(me, now, lat)
                now = (yield now) if tt is None else tt
            tt = use(me, ch, now, service)            # the tier, FCFS
            now = (yield now) if tt is None else tt
            tier_busy[x] += service
            moved[x] += nbytes
            if extra > 0:                             # what the AGCUs add
                tt = after(me, now, extra)
                now = (yield now) if tt is None else tt
            if out is not None:
                if give(out, me, name):
                    now = yield now
                gave(out, name)
        if member is not None:
            ops.loaded(member, name, now)
        fin[0] = now
        fin[1] -= 1
        yield now

    def cross_dies(nbytes, inp, out, name):
        """The D2D link between a producer on one die and its consumer on the other."""
        me = yield
        now = 0.0
        per_tile = nbytes / n
        lat = hw.d2d.latency_s
        service = per_tile / hw.d2d.effective_bandwidth_bytes_per_s
        _non_negative(k, lat, service)
        for t in range(n):
            if take(inp, me):
                now = yield now
            took(inp)
            if t == 0 and lat:
                tt = after(me, now, lat)
                now = (yield now) if tt is None else tt
            tt = use(me, tally.d2d, now, service)
            now = (yield now) if tt is None else tt
            acc[1] += per_tile
            if give(out, me, name):
                now = yield now
            gave(out, name)
        fin[0] = now
        fin[1] -= 1
        yield now

    def stage(i, s, inputs, outputs, group):
        """Tile after tile: a tile from every input, the stage's tile time (a collective
        holds the P2P port, FCFS), the tile into every output."""
        me = yield
        now = 0.0
        name = k.stage_name(i)
        if group is not None:
            ops.wait_resident(group, me)
            now = yield now
        base = tile_time(s, hw, n)
        latency, wire, rate = collective_terms(s, hw, n)
        _non_negative(k, base, latency)
        first = 0.0
        last = n - 1
        for t in range(n):
            for b in inputs:                          # get a tile from every input, in order
                if take(b, me):
                    now = yield now
                took(b)
            if log:
                note(f"{name}:tile{t}", now)
            start = now
            if wire or (latency and t == 0):          # a collective: the P2P port, FCFS
                if t == 0 and latency:
                    tt = after(me, now, latency)
                    now = (yield now) if tt is None else tt
                tt = use(me, tally.p2p, now, max(base, wire / rate))
                now = (yield now) if tt is None else tt
                acc[2] += wire
                acc[0] += now - start
            else:
                tt = after(me, now, base)
                now = (yield now) if tt is None else tt
            busy[i] += now - start
            if t == 0:
                first = start
            if t == last:
                window[i] = (first, now)
            for b in outputs:                         # put it into every output, in order
                if give(b, me, name):
                    now = yield now
                gave(b, name)
        fin[0] = now
        fin[1] -= 1
        yield now

    depth = k.buffer_depth
    inputs: list[list] = [[] for _ in k.stages]
    outputs: list[list] = [[] for _ in k.stages]
    groups: list = [None] * len(k.stages)
    procs = []
    for i, s in enumerate(k.stages):
        for j, nbytes, cross in zip(s.inputs, s.edge_bytes, s.edge_d2d):
            store = ops.buffer(depth)
            inputs[i].append(store)
            if cross:
                near = ops.buffer(depth)
                outputs[j].append(near)
                procs.append(cross_dies(nbytes, near, store, f"{k.stage_name(j)}.d2d"))
            else:
                outputs[j].append(store)
        for st in s.streams:
            if st.write:
                store = ops.buffer(depth)
                outputs[i].append(store)
                procs.append(stream(st, st.nbytes / n, store, None, None, ""))
            elif st.resident:
                if groups[i] is None:
                    groups[i] = ops.resident_group()
                procs.append(stream(st, st.nbytes / n, None, None, ops.join(groups[i]), k.stage_name(i)))
            else:
                store = ops.buffer(depth)
                inputs[i].append(store)
                procs.append(stream(st, st.nbytes * k.passes / n, None, store, None, f"{k.stage_name(i)}.load"))
    for i, s in enumerate(k.stages):
        procs.append(stage(i, s, inputs[i], outputs[i], groups[i]))
    fin[1] = len(procs)
    return procs, tally
