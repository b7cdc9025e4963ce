"""The kernel pipeline of :mod:`rdusim.engine.rdu.pipeline_events` without SimPy: same events, same order.

Why a recurrence alone is not enough: the pipeline's times are max-plus in the tiles
(a get completes when the item was put, a put into a buffer of depth d when the consumer
took tile t-d), but the memory tiers, the P2P port and the D2D link are FCFS channels
shared by several processes, and requests that arrive at the same instant (two load
streams released by the same stage get, every stream at time 0) are served in SimPy's
event order. That order is part of the model, so this evaluation keeps it, and keeps
nothing else:

- Every process (stage, load / write / resident stream, D2D crossing) is a plain generator
  that does its own bookkeeping, suspends with ``yield now`` (handing the loop its clock)
  and is resumed with the current time. No Event objects, callbacks lists or Process
  wrappers.
- SimPy processes events by (time, priority, schedule order). Priority only separates the
  processes' start (all first, in creation order, as SimPy's URGENT Initialize events)
  from the rest, so the queue is a FIFO of what was scheduled at the current instant and
  a heap of (time, sequence, resume) for later instants; entries of the heap due at an
  instant were scheduled before anything scheduled at it, so they are taken first.
- A SimPy event's callbacks run before the process waiting on it resumes; the only such
  callbacks are the buffer's (a processed get lets a blocked put in, a processed put hands
  an item to a waiting get), so the resumed coroutine runs them first, and the condition
  on a stage's resident loads is one more FIFO hop, as SimPy's ``all_of``.
- A resumption that would be the very next event anyway (nothing else queued at this
  instant, and for a timer, no timer due at or before it) is not queued: the coroutine
  carries on with its own clock: no queue round trip, and no change of order. While the
  processes start, a marker holds the queue so that none carries on before all have
  started.
- Times are computed with SimPy's operations (``now + delay``; a channel use waits
  ``done - now``), so the result is bit-identical, not just close.
"""

from __future__ import annotations

from collections import deque
from heapq import heappop, heappush
from itertools import count

from rdusim.compiler.plan import Kernel
from rdusim.engine.rdu.hardware import SocketHw
from rdusim.engine.rdu.kernel_run import KernelRun, collective_terms, stream_link, summarise, tile_time


class _Buf:
    """A stage buffer between one producer and one consumer: the tiles it holds and the
    coroutine blocked putting into it (full) or getting from it (empty), if any."""

    __slots__ = ("cap", "n", "putw", "getw")

    def __init__(self, cap: int):
        self.cap, self.n, self.putw, self.getw = cap, 0, None, None


class _Chan:
    """A shared FCFS channel: when it is next free and when its first use began."""

    __slots__ = ("free", "first")

    def __init__(self):
        self.free, self.first = 0.0, None

    @property
    def window(self) -> tuple[float, float] | None:
        return None if self.first is None else (self.first, self.free)


class _Resident:
    """SimPy's ``all_of`` over a stage's resident loads: loads still running, and the stage."""

    __slots__ = ("left", "waiter", "fifo")

    def __init__(self, fifo: deque):
        self.left, self.waiter, self.fifo = 0, None, fifo

    def done(self, now: float) -> float:       # a load's done event is processed
        self.left -= 1
        if not self.left:
            self.fifo.append(self.waiter)      # the condition succeeds: one more hop
        return now


def _started(now: float) -> float:
    """The marker queued while the processes start (it does nothing when it is reached)."""
    return now


def _non_negative(kernel: Kernel, *times: float) -> None:
    """SimPy refuses a negative delay; so does this evaluation, up front (the compiler never
    makes one: a negative rate, byte count or time is an input error upstream)."""
    for x in times:
        if x < 0:
            raise ValueError(f"kernel {kernel.name}: negative delay {x}")


def simulate_kernel_fast(kernel: Kernel, hw: SocketHw, tiles: int) -> KernelRun:
    """:func:`rdusim.engine.rdu.pipeline_events.simulate_kernel_events` (without a log),
    bit-identical, several times faster."""
    n, k = tiles, kernel
    fifo: deque = deque()
    fappend = fifo.append
    heap: list = []
    seq = count().__next__
    tiers = list(hw.tier_bw)
    tier_index = {t: x for x, t in enumerate(tiers)}
    chans = [_Chan() for _ in tiers]
    p2p, d2d = _Chan(), _Chan()
    moved = [0.0] * len(tiers)
    tier_busy = [0.0] * len(tiers)
    busy = [0.0] * len(k.stages)
    window = [(0.0, 0.0)] * len(k.stages)
    acc = [0.0, 0.0, 0.0]          # collective seconds, D2D bytes, P2P bytes
    fin = [0.0, 0]                 # when the last process ended, processes still running

    # What every process does, shared. Each returns whether the calling coroutine must
    # suspend (``now = yield now``); when it need not, the coroutine carries on at once.
    def wait(me, now: float, tt: float) -> bool:
        """Resume ``me`` at ``tt``: queued behind this instant's events, or on the timer heap,
        unless it is the very next event anyway."""
        if tt == now:
            if fifo:
                fappend(me)
                return True
            return False
        if fifo or (heap and heap[0][0] <= tt):
            heappush(heap, (tt, seq(), me))
            return True
        return False

    def take(b: _Buf, me) -> bool:
        """Get a tile from ``b`` (block on an empty buffer)."""
        if b.n:
            b.n -= 1
            if fifo:
                fappend(me)
                return True
            return False
        b.getw = me
        return True

    def took(b: _Buf) -> None:
        """The processed get's callback: let a blocked put in."""
        w = b.putw
        if w is not None and b.n < b.cap:
            b.n += 1
            b.putw = None
            fappend(w)

    def give(b: _Buf, me) -> bool:
        """Put a tile into ``b`` (block on a full buffer)."""
        if b.n < b.cap:
            b.n += 1
            if fifo:
                fappend(me)
                return True
            return False
        b.putw = me
        return True

    def gave(b: _Buf) -> None:
        """The processed put's callback: hand a waiting get its tile."""
        w = b.getw
        if w is not None and b.n:
            b.n -= 1
            b.getw = None
            fappend(w)

    def use(ch: _Chan, now: float, service: float) -> float:
        """Queue for a shared FCFS channel for ``service``: when the use ends."""
        free = ch.free
        begin = free if free > now else now
        if ch.first is None:
            ch.first = begin
        done = begin + service
        ch.free = done
        return now + (done - now)          # SimPy's timeout(done - now)

    def stream(st, nbytes, inp, out, res):
        """A load (``out``), write (``inp``) or resident (``res``) stream, tile after tile."""
        me = yield
        now = 0.0
        lat, tier, service, extra = stream_link(hw, st, nbytes)
        _non_negative(k, lat, service)
        x = tier_index[tier]
        ch = chans[x]
        for t in range(n):
            if inp is not None:
                if take(inp, me):
                    now = yield now
                took(inp)
            if t == 0 and lat:
                tt = now + lat
                now = (yield now) if wait(me, now, tt) else tt
            tt = use(ch, now, service)                # the tier, FCFS
            now = (yield now) if wait(me, now, tt) else tt
            tier_busy[x] += service
            moved[x] += nbytes
            if extra > 0:                             # what the AGCUs add
                tt = now + extra
                now = (yield now) if wait(me, now, tt) else tt
            if out is not None:
                if give(out, me):
                    now = yield now
                gave(out)
        if res is not None:
            fappend(res.done)
        fin[0] = now
        fin[1] -= 1
        yield now

    def cross_dies(nbytes, inp, out):
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
                tt = now + lat
                now = (yield now) if wait(me, now, tt) else tt
            tt = use(d2d, now, service)
            now = (yield now) if wait(me, now, tt) else tt
            acc[1] += per_tile
            if give(out, me):
                now = yield now
            gave(out)
        fin[0] = now
        fin[1] -= 1
        yield now

    def stage(i, s, inputs, outputs, res):
        me = yield
        now = 0.0
        if res is not None:
            res.waiter = me
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
            start = now
            if wire or (latency and t == 0):          # a collective: the P2P port, FCFS
                if t == 0 and latency:
                    tt = now + latency
                    now = (yield now) if wait(me, now, tt) else tt
                tt = use(p2p, now, max(base, wire / rate))
                now = (yield now) if wait(me, now, tt) else tt
                acc[2] += wire
                acc[0] += now - start
            else:
                tt = now + base
                now = (yield now) if wait(me, now, tt) else tt
            busy[i] += now - start
            if t == 0:
                first = start
            if t == last:
                window[i] = (first, now)
            for b in outputs:                         # put it into every output, in order
                if give(b, me):
                    now = yield now
                gave(b)
        fin[0] = now
        fin[1] -= 1
        yield now

    # the processes, created in the SimPy model's order
    depth = k.buffer_depth
    inputs: list[list] = [[] for _ in k.stages]
    outputs: list[list] = [[] for _ in k.stages]
    resident: list = [None] * len(k.stages)
    procs = []
    for i, s in enumerate(k.stages):
        for j, nbytes, cross in zip(s.inputs, s.edge_bytes, s.edge_d2d):
            store = _Buf(depth)
            inputs[i].append(store)
            if cross:
                near = _Buf(depth)
                outputs[j].append(near)
                procs.append(cross_dies(nbytes, near, store))
            else:
                outputs[j].append(store)
        for st in s.streams:
            if st.write:
                store = _Buf(depth)
                outputs[i].append(store)
                procs.append(stream(st, st.nbytes / n, store, None, None))
            elif st.resident:
                if resident[i] is None:
                    resident[i] = _Resident(fifo)
                resident[i].left += 1
                procs.append(stream(st, st.nbytes / n, None, None, resident[i]))
            else:
                store = _Buf(depth)
                inputs[i].append(store)
                procs.append(stream(st, st.nbytes * k.passes / n, None, store, None))
    for i, s in enumerate(k.stages):
        procs.append(stage(i, s, inputs[i], outputs[i], resident[i]))
    fin[1] = len(procs)

    # start every process in creation order (SimPy's URGENT Initialize events), then run
    for g in procs:
        next(g)
    fappend(_started)      # held in the queue while processes start: none may run ahead of another's start
    for g in procs:
        g.send(g.send)
    now = 0.0
    popleft = fifo.popleft
    while True:
        while fifo:
            now = popleft()(now)
        if not heap:
            break
        now, _, resume = heappop(heap)
        if heap and heap[0][0] == now:           # several due at once: in schedule order
            fappend(resume)
            while heap and heap[0][0] == now:
                fappend(heappop(heap)[2])
        else:
            now = resume(now)
    if fin[1]:
        raise RuntimeError(f"kernel {k.name}: {fin[1]} pipeline processes never finished (deadlock)")

    names = [t.value for t in tiers]
    channels = {name: ch.window for name, ch in zip(names + ["p2p", "d2d"], chans + [p2p, d2d]) if ch.window}
    return summarise(k, fin[0] if procs else 0.0, dict(zip(names, moved)), dict(zip(names, tier_busy)), busy,
                     acc[0], acc[1], acc[2], window, channels)
