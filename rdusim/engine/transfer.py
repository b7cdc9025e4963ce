"""A generic fluid flow model of bulk copies over shared links, in SimPy.

A transfer follows a path of named links. It first pays the sum of its links'
latencies, then streams its bytes. All streaming flows share link bandwidth
max-min fairly (progressive filling): every flow gets the same rate on a link
unless a tighter link elsewhere on its path holds it lower, in which case the
spare capacity goes to the others. Rates are recomputed exactly whenever a
flow starts or ends, so completion times are exact for piecewise-constant
rates (no time stepping).

Used for expert switching: DDR -> HBM on the SN40L and host -> GPU on a DGX
(see ``rdusim.engine.gpu.hostcopy``).

The events are SimPy's, driven by callbacks rather than a generator process per
transfer and per wake-up: a transfer is an urgent start event at the instant it is
requested (where a process would have its initialisation event), then, after its path's
latency, a timeout at which it joins the streaming flows; one rate update per instant at
which flows start or end; one timeout at the earliest projected end; each landing. So
the events that change anything happen in the order the process formulation gave them
(tests/test_flow_events.py keeps that formulation and compares bit for bit). Max-min
rates depend only on how many flows take each path (flows on one path are
interchangeable), so the network solves each such mix once (rdusim.engine.maxmin) and
reuses the solution whenever it recurs. The step between events (rates, then advancing and
landing flows) is :mod:`rdusim.engine.fluid`'s, which also runs it without events.
"""

from __future__ import annotations

import math
from functools import partial
from operator import attrgetter, itemgetter
from types import MappingProxyType
from typing import Callable, Mapping, NamedTuple, Sequence

import simpy
from simpy.events import NORMAL, URGENT, Event, Timeout

from rdusim.engine.fluid import advance_and_land, assign_rates   # the network's step (written once)
from rdusim.engine.maxmin import max_min_rates


class TransferRecord(NamedTuple):
    label: str
    path: tuple[str, ...]
    nbytes: float
    start_s: float      # when the transfer was requested
    end_s: float        # when its last byte arrived


class _Link(NamedTuple):
    name: str
    bandwidth_bytes_per_s: float
    latency_s: float


class _Path:
    """A validated path: its link names, their indices in the network, its latency and what
    a flow on it does when it is requested (stream at once, or first pay the latency)."""

    __slots__ = ("names", "links", "latency_s", "index", "on_request")

    def __init__(self, names: tuple[str, ...], links: tuple[int, ...], latency_s: float, index: int):
        self.names, self.links, self.latency_s, self.index = names, links, latency_s, index
        self.on_request = _delayed if latency_s > 0 else _arrived


class _Flow(Event):
    """One transfer, and the event that drives it: scheduled urgently at the instant it is
    requested (as a process's initialisation would be), then again after its path's
    latency, when it joins the streaming flows. When it ends, its ``done`` event fires; a
    flow of :meth:`FlowNetwork.transfer_all` has none, and is scheduled once more itself in
    that event's place, which only its group waits for. Its
    callbacks are plain functions of the flow (SimPy passes the event, the flow itself)."""

    _ok, _value = True, None    # triggered when made (as a process's initialisation is)
    rate = 0.0                  # until the first rate update after it joins
    done: Event | None = None   # the event :meth:`FlowNetwork.transfer` returned, if any
    label = ""                  # a lone transfer's label (a group's flows: see :meth:`record`)

    def __init__(self, env: simpy.Environment, net: "FlowNetwork", path: _Path, nbytes: float, start_s: float,
                 seq: int, group: "_AllLanded | None"):
        self.env, self.net, self.path, self.links, self.group = env, net, path, path.links, group
        self.nbytes = self.remaining = nbytes
        self.start_s, self.seq = start_s, seq
        self.callbacks = [path.on_request]
        env.schedule(self, URGENT)

    def record(self) -> TransferRecord:
        group = self.group      # a group's flows are labelled when read, not when started
        label = self.label if group is None else group.label_of(self.seq)
        return _record((label, self.path.names, self.nbytes, self.start_s, self.end_s))


def _delayed(flow: _Flow) -> None:
    """Requested: pay the path's latency, then stream."""
    flow.callbacks = [_arrived]
    flow.env.schedule(flow, NORMAL, flow.path.latency_s)


def _arrived(flow: _Flow) -> None:
    """Join the streaming flows (a rate update follows at this instant)."""
    net = flow.net
    if flow.nbytes <= 0:
        net._finish(flow)
        return
    if net._last_update != flow.env._now:
        net._advance()
    net._active.append(flow)
    net._path_counts[flow.path.index] += 1
    if not net._rates_due:
        net._request_rates()


class FlowNetwork:
    """Links with bandwidth and latency; transfers share them max-min fairly."""

    def __init__(self, env: simpy.Environment):
        self._env = env
        self._links: dict[str, _Link] = {}
        self._capacity: dict[str, float] = {}  # link name -> bandwidth
        self._index: dict[str, int] = {}       # link name -> position in _bytes
        self._bytes: list[float] = []          # bytes each link has carried
        self._paths: dict[tuple[str, ...], _Path] = {}
        self._path_list: list[_Path] = []
        self._active: list[_Flow] = []
        self._path_counts: list[int] = []      # streaming flows on each path (by its index)
        self._solutions: dict[tuple[int, ...], list[float]] = {}   # path counts -> rate on each path
        self._finished: list[_Flow] = []      # in the order they landed (records made when read)
        self._version = 0              # changes whenever a link's byte count may have
        self._last_update = env.now
        self._wake_event: Event | None = None  # the pending end-of-flow timeout (older ones are stale)
        self._seq = 0                 # per-network counter: deterministic ordering of flows
        self._rates_due = False       # a rate update is scheduled at this instant
        self._rates_event = Event(env)
        self._rates_event._ok, self._rates_event._value = True, None

    # ---- building ----
    def add_link(self, name: str, bandwidth_bytes_per_s: float, latency_s: float = 0.0) -> None:
        if name in self._links:
            raise ValueError(f"link {name!r} already exists")
        if not (bandwidth_bytes_per_s > 0 and math.isfinite(bandwidth_bytes_per_s)):
            raise ValueError(f"link {name!r}: bandwidth must be a positive finite number, got {bandwidth_bytes_per_s}")
        if not (latency_s >= 0 and math.isfinite(latency_s)):
            raise ValueError(f"link {name!r}: latency must be >= 0, got {latency_s}")
        self._links[name] = _Link(name, float(bandwidth_bytes_per_s), float(latency_s))
        self._capacity[name] = float(bandwidth_bytes_per_s)
        self._index[name] = len(self._bytes)
        self._bytes.append(0.0)

    # ---- the verb ----
    def transfer(self, path: Sequence[str], nbytes: float, label: str = "") -> simpy.Event:
        """Start a copy along ``path``; the returned event fires when the last byte arrives
        (its value: the transfer's :class:`TransferRecord`)."""
        flow = self._start(self._checked((path,)), nbytes, None)[0]
        flow.label = label
        flow.done = Event(self._env)
        return flow.done

    def transfer_all(self, paths: Sequence[Sequence[str]], nbytes: float, labels: Sequence[str]) -> simpy.Event:
        """Start a copy of ``nbytes`` along each of ``paths`` (labelled ``labels``), one after
        another at this instant, as that many :meth:`transfer` calls would. The returned event
        fires when the last one has landed (its value None: the records are in :attr:`records`), at the
        point in SimPy's event order where ``simpy.AllOf`` of those calls' events would."""
        valid = self._checked(paths)
        if len(labels) != len(valid):
            raise ValueError(f"{len(valid)} paths but {len(labels)} labels")
        return self._start_all(valid, nbytes, "", tuple(labels))

    def group_transfer(self, paths: Sequence[Sequence[str]],
                       suffixes: Sequence[str]) -> Callable[[float, str], simpy.Event]:
        """:meth:`transfer_all` along ``paths`` as a function of ``(nbytes, label)``, the paths
        checked once: the copy along ``paths[i]`` is labelled ``label + suffixes[i]`` (made when
        :attr:`records` is read)."""
        valid = self._checked(paths)
        if len(suffixes) != len(valid):
            raise ValueError(f"{len(valid)} paths but {len(suffixes)} label suffixes")
        suffixes, env, start = tuple(suffixes), self._env, self._start

        def start_all(nbytes: float, label: str) -> Event:
            group = _AllLanded(env)
            group.wait_for(start(valid, nbytes, group), label, suffixes)
            return group
        return start_all

    def _start_all(self, valid: tuple[_Path, ...], nbytes: float, label: str, suffixes: tuple[str, ...]) -> Event:
        group = _AllLanded(self._env)
        group.wait_for(self._start(valid, nbytes, group), label, suffixes)
        return group

    def _checked(self, paths: Sequence[Sequence[str]]) -> tuple[_Path, ...]:
        known, valid = self._paths, []
        for p in paths:
            if type(p) is not tuple:
                p = tuple(p)
            valid.append(known.get(p) or self._new_path(p))
        return tuple(valid)

    def _start(self, valid: tuple[_Path, ...], nbytes: float, group: "_AllLanded | None") -> list["_Flow"]:
        """The flows on checked paths (nothing starts if ``nbytes`` is bad)."""
        if not 0.0 <= nbytes < math.inf:
            raise ValueError(f"nbytes must be a finite number >= 0, got {nbytes}")
        nbytes, seq, env = float(nbytes), self._seq, self._env
        now = env._now
        flows = [_Flow(env, self, p, nbytes, now, k, group) for k, p in enumerate(valid, seq)]
        self._seq = seq + len(flows)
        return flows

    def _new_path(self, path: tuple[str, ...]) -> _Path:
        if not path:
            raise ValueError("a transfer needs a path of at least one link")
        unknown = [p for p in path if p not in self._links]
        if unknown:
            raise ValueError(f"unknown link(s) {unknown}; known: {sorted(self._links)}")
        if len(set(path)) != len(path):
            raise ValueError(f"path {path} visits a link twice")
        p = _Path(path, tuple(self._index[name] for name in path), self.path_latency_s(path), len(self._path_list))
        self._paths[path] = p
        self._path_list.append(p)
        self._path_counts.append(0)
        return p

    def path_latency_s(self, path: Sequence[str]) -> float:
        links = self._links
        return sum([links[p].latency_s for p in path])

    # ---- read-only state ----
    @property
    def records(self) -> tuple[TransferRecord, ...]:
        return tuple([f.record() for f in self._finished])

    @property
    def link_bytes(self) -> Mapping[str, float]:
        """Bytes each link has carried so far (completed flows and progress of active ones)."""
        self._advance()
        return MappingProxyType({name: self._bytes[i] for name, i in self._index.items()})

    def bytes_meter(self, links: Sequence[str]) -> Callable[[], tuple[float, ...]]:
        """A function that reads :attr:`link_bytes` of just ``links``, in their order. While
        no byte has moved since its last reading, it returns that same tuple again."""
        index = [self._index[name] for name in links]
        pick = itemgetter(*index) if len(index) > 1 else (lambda moved: tuple(moved[i] for i in index))
        moved, env = self._bytes, self._env
        last = [-1, ()]     # the network's byte-count version at the last reading, and the reading

        def read() -> tuple[float, ...]:
            if self._last_update != env._now:
                self._advance()
            if last[0] != self._version:
                last[0], last[1] = self._version, pick(moved)
            return last[1]
        return read

    @property
    def links(self) -> tuple[str, ...]:
        return tuple(self._links)

    @property
    def active_flows(self) -> int:
        return len(self._active)

    # ---- the events ----
    def _request_rates(self) -> None:
        """Recompute the rates once the flows starting or ending at this instant all have
        (bytes move only as time passes, so rates set later at the same instant are exact;
        eight devices starting an expert's shards at once cost one update, not eight)."""
        if self._rates_due:
            return
        self._rates_due = True
        ev = self._rates_event      # one event, scheduled again for each update
        ev.callbacks = [self._rates_now]
        self._env.schedule(ev)

    def _rates_now(self, _event) -> None:
        self._rates_due = False
        self._advance()
        self._reschedule()

    def _advance(self) -> None:
        """Move every active flow forward from the last update to now at its current rate."""
        now = self._env._now
        dt = now - self._last_update
        if dt > 0 and self._active:
            self._version += 1
            moved_on = self._bytes
            for f in self._active:
                moved = f.rate * dt
                left = f.remaining
                if not moved < left:
                    moved = left
                f.remaining = left - moved
                for i in f.links:
                    moved_on[i] += moved
        self._last_update = now

    def _reschedule(self) -> None:
        """Give every streaming flow its max-min rate (solved once per mix of paths) and
        wake up when the first of them will have ended."""
        if not self._active:     # (nothing to solve)
            self._wake_event = None
            return
        key = tuple(self._path_counts)
        rates = self._solutions.get(key)
        if rates is None:
            rates = self._solutions[key] = max_min_rates([p.names for p in self._path_list], key, self._capacity)
        now = self._env._now
        next_end = assign_rates(self._active, rates, now)
        wake = self._wake_event = Timeout(self._env, max(next_end - now, 0.0))
        wake.callbacks.append(self._wake)

    def _wake(self, event) -> None:
        if event is not self._wake_event:
            return   # a flow started or ended meanwhile; a newer wake-up is scheduled
        now = self._env._now
        dt = now - self._last_update
        self._last_update = now
        moved_on = self._bytes
        self._version += 1
        ended, self._active = advance_and_land(self._active, dt, now, moved_on)   # _advance, and which have ended
        counts = self._path_counts
        for f in ended:
            counts[f.path.index] -= 1
            left = f.remaining
            if left:     # its last sliver (adding 0.0 would change no byte count)
                for j in f.links:
                    moved_on[j] += left
                f.remaining = 0.0
            f.end_s = now
        if len(ended) > 1:
            ended.sort(key=_by_seq)
        self._finished += ended
        schedule = self._env.schedule
        for f in ended:     # _finish, inline
            done = f.done
            if done is None:        # a flow of transfer_all: it stands for its own event
                f.callbacks = [f.group.landed]
                schedule(f)
            else:
                done._ok, done._value = True, f.record()
                schedule(done)
        if not self._rates_due:
            self._request_rates()

    def _finish(self, flow: _Flow) -> None:
        flow.end_s = self._env._now
        self._finished.append(flow)
        done = flow.done            # triggered only here
        if done is None:
            flow.callbacks = [flow.group.landed]
            self._env.schedule(flow)
        else:
            done._ok, done._value = True, flow.record()
            self._env.schedule(done)


class _AllLanded(Event):
    """Succeeds when the last of ``flows`` has landed, as ``simpy.AllOf`` of their events
    would (scheduled while the last one's landing is processed), without a condition value
    to assemble."""

    def wait_for(self, flows: list[_Flow], label: str, suffixes: tuple[str, ...]) -> None:
        """``flows`` labelled ``label + suffixes[i]`` in turn."""
        self._left = len(flows)
        self.landed = self._landed      # the callback of each flow's landing (bound once)
        self._label, self._suffixes = label, suffixes
        self._first = flows[0].seq if flows else 0

    def label_of(self, seq: int) -> str:
        return self._label + self._suffixes[seq - self._first]

    def _landed(self, _flow) -> None:
        self._left -= 1
        if not self._left:
            self.succeed()


_by_seq = attrgetter("seq")
_record = partial(tuple.__new__, TransferRecord)    # TransferRecord of a 5-tuple, without its __new__
