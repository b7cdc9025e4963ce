"""The SimPy loop of one kernel's streaming pipeline: the reference (see :mod:`rdusim.engine.rdu.pipeline`).

The processes are :mod:`rdusim.engine.rdu.pipeline_process`'s; here every one of them runs
as a SimPy process and every wait is a SimPy event (a timeout, a channel use, a buffer get
or put, the ``all_of`` of a stage's resident loads). :mod:`rdusim.engine.rdu.pipeline_fast`
drives the same processes in SimPy's event order without its per-event cost.
"""

from __future__ import annotations

import simpy

from rdusim.compiler.plan import Kernel
from rdusim.engine.rdu.hardware import SocketHw
from rdusim.engine.rdu.kernel_run import KernelRun, summarise
from rdusim.engine.rdu.pipeline_process import processes


class _Server:
    """A shared first-come-first-served channel (a memory tier, a link).

    Equivalent to a ``simpy.Resource`` of capacity one held for a known service time,
    but one event per use: a request arriving at ``now`` completes at
    ``max(now, end of the previous request) + service``.
    """

    __slots__ = ("env", "free_at", "first")

    def __init__(self, env: simpy.Environment):
        self.env = env
        self.free_at = 0.0
        self.first: float | None = None      # when the first use began

    def use(self, service_s: float) -> simpy.Event:
        begin = max(self.env.now, self.free_at)
        if self.first is None:
            self.first = begin
        done = begin + service_s
        self.free_at = done
        return self.env.timeout(done - self.env.now)

    @property
    def window(self) -> tuple[float, float] | None:
        return None if self.first is None else (self.first, self.free_at)


class _Buffer:
    """A bounded FIFO stage buffer between one producer and one consumer process.

    ``simpy.Store`` with its exact event order (a put succeeds at once if there is room,
    else when a get frees a slot; a get succeeds at once if there is an item, else when
    a put adds one), without its generality: a store with one putter and one getter only
    ever looks at the head of each queue, which takes far fewer Python calls per tile.
    """

    __slots__ = ("env", "capacity", "items", "puts", "gets", "blocked")

    def __init__(self, env: simpy.Environment, capacity: int):
        self.env = env
        self.capacity = capacity
        self.items: list = []
        self.puts: list = []
        self.gets: list = []
        self.blocked = False         # a put waiting for room (what the log notes)

    def put(self, item) -> simpy.Event:
        ev = simpy.Event(self.env)
        ev.item = item
        self.puts.append(ev)
        ev.callbacks.append(self._serve_get)
        self._serve_put(None)
        return ev

    def get(self) -> simpy.Event:
        ev = simpy.Event(self.env)
        self.gets.append(ev)
        ev.callbacks.append(self._serve_put)
        self._serve_get(None)
        return ev

    def _serve_put(self, _event) -> None:
        if self.puts and len(self.items) < self.capacity:
            ev = self.puts.pop(0)
            self.items.append(ev.item)
            ev.succeed()

    def _serve_get(self, _event) -> None:
        if self.gets and self.items:
            self.gets.pop(0).succeed(self.items.pop(0))


class _SimOps:
    """The waits of :mod:`rdusim.engine.rdu.pipeline_process` as SimPy events: each call
    leaves the event the process waits on in ``pending`` (the process always suspends) and
    :func:`_drive` yields it. ``log`` notes tile starts, puts blocked on a full buffer and
    resident loads."""

    def __init__(self, env: simpy.Environment, log: list | None):
        self.env, self.records, self.log = env, log, log is not None
        self.pending: simpy.Event | None = None

    def buffer(self, depth: int) -> _Buffer:
        return _Buffer(self.env, depth)

    def channel(self) -> _Server:
        return _Server(self.env)

    def resident_group(self) -> list:
        return []

    def join(self, group: list) -> simpy.Event:
        ev = self.env.event()
        group.append(ev)
        return ev

    def after(self, me, now: float, delay: float) -> None:
        self.pending = self.env.timeout(delay)

    def use(self, me, channel: _Server, now: float, service: float) -> None:
        self.pending = channel.use(service)

    def take(self, buf: _Buffer, me) -> bool:
        self.pending = buf.get()
        return True

    def took(self, buf: _Buffer) -> None:
        pass

    def give(self, buf: _Buffer, me, name: str) -> bool:
        if self.log and len(buf.items) >= buf.capacity:
            self.note(f"{name}:blocked", self.env.now)
            buf.blocked = True
        self.pending = buf.put(None)
        return True

    def gave(self, buf: _Buffer, name: str) -> None:
        if buf.blocked:
            buf.blocked = False
            self.note(f"{name}:unblocked", self.env.now)

    def wait_resident(self, group: list, me) -> None:
        self.pending = self.env.all_of(group)

    def loaded(self, member: simpy.Event, name: str, now: float) -> None:
        self.note(f"{name}:resident_loaded", now)
        member.succeed()

    def note(self, what: str, now: float) -> None:
        if self.records is not None:
            self.records.append((what, self.env.now))


def _drive(process, ops: _SimOps):
    """One process as a SimPy process: start it, then yield each event it waits on and
    send it the time when the event has happened, until it ends."""
    next(process)
    process.send(None)
    while ops.pending is not None:
        ev, ops.pending = ops.pending, None
        yield ev
        process.send(ops.env.now)


def simulate_kernel_events(kernel: Kernel, hw: SocketHw, tiles: int, log: list | None = None) -> KernelRun:
    """Simulate one execution of ``kernel`` on one socket in SimPy, its streams cut into ``tiles``.

    ``log``, when given, receives ``(event, time)`` pairs: each stage's tile starts,
    ``<stage>:blocked`` / ``:unblocked`` around puts into full buffers, resident loads.
    """
    env = simpy.Environment()
    ops = _SimOps(env, log)
    procs, tally = processes(kernel, hw, tiles, ops)
    env.run(env.all_of([env.process(_drive(p, ops)) for p in procs]))
    names = [t.value for t in tally.tiers]
    return summarise(kernel, env.now, dict(zip(names, tally.moved)), dict(zip(names, tally.tier_busy)), tally.busy,
                     tally.acc[0], tally.acc[1], tally.acc[2], tally.window, tally.channel_windows())
