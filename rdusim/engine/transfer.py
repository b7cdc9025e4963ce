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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, Sequence

import simpy

# flows whose projected end lies within this relative distance of now are complete
_REL_EPS = 1e-12


@dataclass(frozen=True)
class TransferRecord:
    label: str
    path: tuple[str, ...]
    nbytes: float
    start_s: float      # when the transfer was requested
    end_s: float        # when its last byte arrived


@dataclass(frozen=True)
class _Link:
    name: str
    bandwidth_bytes_per_s: float
    latency_s: float


class _Flow:
    __slots__ = ("label", "path", "nbytes", "start_s", "remaining", "rate", "done", "seq")

    def __init__(self, label: str, path: tuple[str, ...], nbytes: float, start_s: float,
                 done: simpy.Event, seq: int):
        self.label, self.path, self.nbytes, self.start_s = label, path, nbytes, start_s
        self.remaining = nbytes
        self.rate = 0.0
        self.done = done
        self.seq = seq


class FlowNetwork:
    """Links with bandwidth and latency; transfers share them max-min fairly."""

    def __init__(self, env: simpy.Environment):
        self._env = env
        self._links: dict[str, _Link] = {}
        self._active: list[_Flow] = []
        self._records: list[TransferRecord] = []
        self._link_bytes: dict[str, float] = {}
        self._last_update = env.now
        self._generation = 0          # invalidates stale wake-ups after a rate change
        self._seq = 0                 # per-network counter: deterministic ordering of flows
        self._rates_due = False       # a rate update is scheduled at this instant

    # ---- building ----
    def add_link(self, name: str, bandwidth_bytes_per_s: float, latency_s: float = 0.0) -> None:
        if name in self._links:
            raise ValueError(f"link {name!r} already exists")
        if not (bandwidth_bytes_per_s > 0 and math.isfinite(bandwidth_bytes_per_s)):
            raise ValueError(f"link {name!r}: bandwidth must be a positive finite number, got {bandwidth_bytes_per_s}")
        if not (latency_s >= 0 and math.isfinite(latency_s)):
            raise ValueError(f"link {name!r}: latency must be >= 0, got {latency_s}")
        self._links[name] = _Link(name, float(bandwidth_bytes_per_s), float(latency_s))
        self._link_bytes[name] = 0.0

    # ---- the verb ----
    def transfer(self, path: Sequence[str], nbytes: float, label: str = "") -> simpy.Event:
        """Start a copy along ``path``; the returned event fires when the last byte arrives."""
        path = tuple(path)
        if not path:
            raise ValueError("a transfer needs a path of at least one link")
        unknown = [p for p in path if p not in self._links]
        if unknown:
            raise ValueError(f"unknown link(s) {unknown}; known: {sorted(self._links)}")
        if len(set(path)) != len(path):
            raise ValueError(f"path {path} visits a link twice")
        if not (nbytes >= 0 and math.isfinite(nbytes)):
            raise ValueError(f"nbytes must be a finite number >= 0, got {nbytes}")
        done = self._env.event()
        flow = _Flow(label, path, float(nbytes), self._env.now, done, self._seq)
        self._seq += 1
        self._env.process(self._run(flow))
        return done

    def path_latency_s(self, path: Sequence[str]) -> float:
        return sum(self._links[p].latency_s for p in path)

    # ---- read-only state ----
    @property
    def records(self) -> tuple[TransferRecord, ...]:
        return tuple(self._records)

    @property
    def link_bytes(self) -> Mapping[str, float]:
        """Bytes each link has carried so far (completed flows and progress of active ones)."""
        self._advance()
        return MappingProxyType(dict(self._link_bytes))

    @property
    def links(self) -> tuple[str, ...]:
        return tuple(self._links)

    @property
    def active_flows(self) -> int:
        return len(self._active)

    # ---- the process ----
    def _run(self, flow: _Flow):
        latency = self.path_latency_s(flow.path)
        if latency > 0:
            yield self._env.timeout(latency)
        if flow.nbytes <= 0:
            self._finish(flow)
            return
        self._advance()
        self._active.append(flow)
        self._request_rates()

    def _request_rates(self) -> None:
        """Recompute the rates once the flows starting or ending at this instant all have
        (bytes move only as time passes, so rates set later at the same instant are exact;
        eight devices starting an expert's shards at once cost one update, not eight)."""
        if self._rates_due:
            return
        self._rates_due = True
        ev = self._env.event()
        ev.callbacks.append(self._rates_now)
        ev.succeed()

    def _rates_now(self, _event) -> None:
        self._rates_due = False
        self._advance()
        self._reschedule()

    def _advance(self) -> None:
        """Move every active flow forward from the last update to now at its current rate."""
        now = self._env.now
        dt = now - self._last_update
        if dt > 0:
            for f in self._active:
                moved = min(f.remaining, f.rate * dt)
                f.remaining -= moved
                for name in f.path:
                    self._link_bytes[name] += moved
        self._last_update = now

    def _assign_rates(self) -> None:
        """Max-min fair rates by progressive filling: repeatedly the link whose remaining
        capacity, split equally over its flows not yet fixed, is tightest (the first in
        name order among equals) fixes those flows at that share."""
        users: dict[str, list[_Flow]] = {}
        for f in self._active:
            f.rate = 0.0
            for name in f.path:
                users.setdefault(name, []).append(f)
        cap = {name: self._links[name].bandwidth_bytes_per_s for name in users}
        count = {name: len(flows) for name, flows in users.items()}
        names = sorted(users)
        frozen: set[int] = set()
        left = len(self._active)
        while left:
            best_name, best_share = None, math.inf
            for name in names:
                n = count[name]
                if n:
                    share = cap[name] / n
                    if share < best_share:
                        best_name, best_share = name, share
            if best_name is None:
                break
            share = max(best_share, 0.0)
            for f in users[best_name]:
                if f.seq in frozen:
                    continue
                f.rate = share
                frozen.add(f.seq)
                left -= 1
                for name in f.path:
                    cap[name] -= share
                    count[name] -= 1

    def _reschedule(self) -> None:
        self._assign_rates()
        self._generation += 1
        if not self._active:
            return
        now = self._env.now
        next_end = min(now + f.remaining / f.rate for f in self._active)
        self._env.process(self._wake(max(next_end - now, 0.0), self._generation))

    def _wake(self, delay: float, generation: int):
        yield self._env.timeout(delay)
        if generation != self._generation:
            return   # a flow started or ended meanwhile; a newer wake-up is scheduled
        self._advance()
        now = self._env.now
        tol = _REL_EPS * max(now, 1e-9)
        ended = [f for f in self._active if f.remaining / f.rate <= tol or f.remaining <= f.nbytes * _REL_EPS]
        if not ended:   # rounding left a sliver: force the earliest one
            ended = [min(self._active, key=lambda f: (f.remaining / f.rate, f.seq))]
        for f in ended:
            self._active.remove(f)
            for name in f.path:
                self._link_bytes[name] += f.remaining
            f.remaining = 0.0
        for f in sorted(ended, key=lambda f: f.seq):
            self._finish(f)
        self._request_rates()

    def _finish(self, flow: _Flow) -> None:
        self._records.append(TransferRecord(flow.label, flow.path, flow.nbytes, flow.start_s, self._env.now))
        flow.done.succeed(self._records[-1])
