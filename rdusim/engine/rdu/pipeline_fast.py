"""The kernel pipeline's processes (:mod:`rdusim.engine.rdu.pipeline_process`) on a minimal
event loop: the events of the SimPy loop (:mod:`rdusim.engine.rdu.pipeline_events`), in the same order.

Why a recurrence alone is not enough: the pipeline's times are max-plus in the tiles
(a get completes when the item was put, a put into a buffer of depth d when the consumer
took tile t-d), but the memory tiers, the P2P port and the D2D link are FCFS channels
shared by several processes, and requests that arrive at the same instant (two load
streams released by the same stage get, every stream at time 0) are served in SimPy's
event order. That order is part of the model, so this evaluation keeps it, and keeps
nothing else:

- Every process (stage, load / write / resident stream, D2D crossing) is the plain
  generator of :mod:`rdusim.engine.rdu.pipeline_process`; it suspends with ``yield now``
  (handing the loop its clock) and is resumed with the current time. No Event objects,
  callbacks lists or Process wrappers: its waits are the closures of :func:`_fast_ops`.
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
from types import SimpleNamespace

from rdusim.compiler.plan import Kernel
from rdusim.engine.rdu.hardware import SocketHw
from rdusim.engine.rdu.kernel_run import KernelRun, summarise
from rdusim.engine.rdu.pipeline_process import processes


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


def _fast_ops(fifo: deque, heap: list, seq) -> SimpleNamespace:
    """The processes' waits on this loop (closures, for speed). Each returns whether the
    calling coroutine must suspend, or, for the timed ones, the time it carries on at
    (None: suspended); a resumption that would be the very next event anyway is not queued."""
    fappend = fifo.append

    def after(me, now: float, delay: float):
        """Resume ``me`` at ``now + delay``: queued behind this instant's events, or on the
        timer heap, unless it is the very next event anyway."""
        tt = now + delay
        if tt == now:
            if fifo:
                fappend(me)
                return None
            return tt
        if fifo or (heap and heap[0][0] <= tt):
            heappush(heap, (tt, seq(), me))
            return None
        return tt

    def use(me, ch: _Chan, now: float, service: float):
        """Queue for a shared FCFS channel for ``service``, then as :func:`after`."""
        free = ch.free
        begin = free if free > now else now
        if ch.first is None:
            ch.first = begin
        done = begin + service
        ch.free = done
        tt = now + (done - now)            # SimPy's timeout(done - now)
        # then as after(): written into both, one call per wait on the hottest path
        # (a shared helper costs ~8% of the fast loop, benchmarks/bench_pipeline.py)
        if tt == now:
            if fifo:
                fappend(me)
                return None
            return tt
        if fifo or (heap and heap[0][0] <= tt):
            heappush(heap, (tt, seq(), me))
            return None
        return tt

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

    def give(b: _Buf, me, name: str) -> bool:
        """Put a tile into ``b`` (block on a full buffer)."""
        if b.n < b.cap:
            b.n += 1
            if fifo:
                fappend(me)
                return True
            return False
        b.putw = me
        return True

    def gave(b: _Buf, name: str) -> None:
        """The processed put's callback: hand a waiting get its tile."""
        w = b.getw
        if w is not None and b.n:
            b.n -= 1
            b.getw = None
            fappend(w)

    def join(group: _Resident) -> _Resident:
        group.left += 1
        return group

    def wait_resident(group: _Resident, me) -> None:
        group.waiter = me

    def loaded(member: _Resident, name: str, now: float) -> None:
        fappend(member.done)

    def note(what: str, now: float) -> None:
        pass

    return SimpleNamespace(log=False, buffer=_Buf, channel=_Chan, resident_group=lambda: _Resident(fifo),
                           join=join, after=after, use=use, take=take, took=took, give=give, gave=gave,
                           wait_resident=wait_resident, loaded=loaded, note=note)


def simulate_kernel_fast(kernel: Kernel, hw: SocketHw, tiles: int) -> KernelRun:
    """:func:`rdusim.engine.rdu.pipeline_events.simulate_kernel_events` (without a log),
    bit-identical, several times faster."""
    fifo: deque = deque()
    fappend = fifo.append
    heap: list = []
    procs, tally = processes(kernel, hw, tiles, _fast_ops(fifo, heap, count().__next__))

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
    if tally.fin[1]:
        raise RuntimeError(f"kernel {kernel.name}: {tally.fin[1]} pipeline processes never finished (deadlock)")

    names = [t.value for t in tally.tiers]
    return summarise(kernel, tally.fin[0] if procs else 0.0, dict(zip(names, tally.moved)),
                     dict(zip(names, tally.tier_busy)), tally.busy, tally.acc[0], tally.acc[1], tally.acc[2],
                     tally.window, tally.channel_windows())
