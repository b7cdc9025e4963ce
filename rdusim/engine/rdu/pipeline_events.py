"""The SimPy model of one kernel's streaming pipeline: the reference (see :mod:`rdusim.engine.rdu.pipeline`).

Every stage, stream and D2D crossing is a SimPy process; :mod:`rdusim.engine.rdu.pipeline_fast`
reproduces its event order exactly without SimPy's per-event cost.
"""

from __future__ import annotations

import simpy

from rdusim.compiler.plan import Kernel, Stage, Stream
from rdusim.engine.rdu.hardware import SocketHw
from rdusim.engine.rdu.kernel_run import KernelRun, collective_terms, stream_link, summarise, tile_time


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

    __slots__ = ("env", "capacity", "items", "puts", "gets")

    def __init__(self, env: simpy.Environment, capacity: int):
        self.env = env
        self.capacity = capacity
        self.items: list = []
        self.puts: list = []
        self.gets: list = []

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


class _Sim:
    def __init__(self, kernel: Kernel, hw: SocketHw, tiles: int, log: list | None):
        self.k, self.hw, self.n, self.log = kernel, hw, tiles, log
        self.env = simpy.Environment()
        self.tier = {t: _Server(self.env) for t in hw.tier_bw}
        self.p2p = _Server(self.env)
        self.d2d = _Server(self.env)
        self.moved = {t.value: 0.0 for t in hw.tier_bw}
        self.tier_busy = {t.value: 0.0 for t in hw.tier_bw}
        self.busy = [0.0] * len(kernel.stages)
        self.window = [(0.0, 0.0)] * len(kernel.stages)
        self.coll = 0.0
        self.d2d_bytes = 0.0
        self.p2p_bytes = 0.0

    def note(self, what: str) -> None:
        if self.log is not None:
            self.log.append((what, self.env.now))

    # ---- off-chip ----
    def _link(self, st: Stream, nbytes: float) -> tuple:
        """Per-tile constants of a stream moving ``nbytes`` a tile: first-byte latency, the
        tier's server and name, the tier's service time, and what its AGCUs add to it."""
        lat, tier, service, extra = stream_link(self.hw, st, nbytes)
        return lat, self.tier[tier], tier.value, service, extra

    def stream(self, st: Stream, nbytes: float, *, inp: _Buffer | None = None,
               out: _Buffer | None = None, name: str = ""):
        """Move ``nbytes`` a tile over the stream's tier, tile after tile. A write stream
        first takes each tile from ``inp``; a load stream hands each tile to ``out``; a
        resident operand's load does neither. The first tile pays the tier's latency; each
        tile queues for the tier (FCFS) and then for the AGCUs' extra time, if any."""
        lat, server, tier, service, extra = self._link(st, nbytes)
        timeout, log = self.env.timeout, self.log
        for t in range(self.n):
            if inp is not None:
                yield inp.get()
            if t == 0 and lat:
                yield timeout(lat)
            yield server.use(service)
            self.tier_busy[tier] += service
            self.moved[tier] += nbytes
            if extra > 0:
                yield timeout(extra)
            if out is not None:
                if log is None:
                    yield out.put(t)
                else:
                    yield from self.put(name, out, t)

    def load_resident(self, name: str, st: Stream, done: simpy.Event):
        yield from self.stream(st, st.nbytes / self.n)
        self.note(f"{name}:resident_loaded")
        done.succeed()

    def put(self, name: str, store: _Buffer, item):
        if self.log is not None and len(store.items) >= store.capacity:
            self.note(f"{name}:blocked")
            yield store.put(item)
            self.note(f"{name}:unblocked")
        else:
            yield store.put(item)

    # ---- stages ----
    def tile_time(self, s: Stage) -> float:
        return tile_time(s, self.hw, self.n)

    def run_stage(self, i: int, s: Stage, inputs: list, outputs: list, resident: list):
        name = self.k.stage_name(i)
        if resident:
            yield self.env.all_of(resident)
        base = self.tile_time(s)
        latency, wire, rate = collective_terms(s, self.hw, self.n)
        log = self.log
        for t in range(self.n):
            for store in inputs:
                yield store.get()
            if log is not None:
                self.note(f"{name}:tile{t}")
            start = self.env.now
            if wire or (latency and t == 0):
                if t == 0 and latency:
                    yield self.env.timeout(latency)
                yield self.p2p.use(max(base, wire / rate))
                self.p2p_bytes += wire
                self.coll += self.env.now - start
            else:
                yield self.env.timeout(base)
            self.busy[i] += self.env.now - start
            if t == 0:
                first = start
            if t == self.n - 1:
                self.window[i] = (first, self.env.now)
            for store in outputs:
                if log is None:
                    yield store.put(t)
                else:
                    yield from self.put(name, store, t)

    def cross_dies(self, name: str, nbytes: float, inp: _Buffer, out: _Buffer):
        """The D2D link between a producer on one die and its consumer on the other."""
        per_tile = nbytes / self.n
        for t in range(self.n):
            yield inp.get()
            if t == 0 and self.hw.d2d.latency_s:
                yield self.env.timeout(self.hw.d2d.latency_s)
            yield self.d2d.use(per_tile / self.hw.d2d.effective_bandwidth_bytes_per_s)
            self.d2d_bytes += per_tile
            yield from self.put(name, out, t)

    def run(self) -> KernelRun:
        env, k = self.env, self.k
        inputs: list[list] = [[] for _ in k.stages]
        outputs: list[list] = [[] for _ in k.stages]
        resident: list[list] = [[] for _ in k.stages]
        procs = []
        for i, s in enumerate(k.stages):
            for j, nbytes, cross in zip(s.inputs, s.edge_bytes, s.edge_d2d):
                store = _Buffer(env, k.buffer_depth)
                inputs[i].append(store)
                if cross:
                    near = _Buffer(env, k.buffer_depth)
                    outputs[j].append(near)
                    procs.append(env.process(self.cross_dies(f"{k.stage_name(j)}.d2d", nbytes, near, store)))
                else:
                    outputs[j].append(store)
            for st in s.streams:
                if st.write:
                    store = _Buffer(env, k.buffer_depth)
                    outputs[i].append(store)
                    procs.append(env.process(self.stream(st, st.nbytes / self.n, inp=store)))
                elif st.resident:
                    ev = env.event()
                    resident[i].append(ev)
                    procs.append(env.process(self.load_resident(k.stage_name(i), st, ev)))
                else:
                    store = _Buffer(env, k.buffer_depth)
                    inputs[i].append(store)
                    procs.append(env.process(self.stream(st, st.nbytes * k.passes / self.n, out=store,
                                                          name=f"{k.stage_name(i)}.load")))
        for i, s in enumerate(k.stages):
            procs.append(env.process(self.run_stage(i, s, inputs[i], outputs[i], resident[i])))
        env.run(env.all_of(procs))
        servers = [(t.value, srv) for t, srv in self.tier.items()] + [("p2p", self.p2p), ("d2d", self.d2d)]
        return summarise(k, env.now, dict(self.moved), dict(self.tier_busy), self.busy, self.coll,
                         self.d2d_bytes, self.p2p_bytes, self.window,
                         {name: srv.window for name, srv in servers if srv.window})


def simulate_kernel_events(kernel: Kernel, hw: SocketHw, tiles: int, log: list | None = None) -> KernelRun:
    """Simulate one execution of ``kernel`` on one socket in SimPy, its streams cut into ``tiles``.

    ``log``, when given, receives ``(event, time)`` pairs: each stage's tile starts,
    ``<stage>:blocked`` / ``:unblocked`` around puts into full buffers, resident loads.
    """
    return _Sim(kernel, hw, tiles, log).run()
