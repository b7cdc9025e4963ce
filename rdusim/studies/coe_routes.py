"""The CoE study's routings and what the expert cache does with them, each made once.

A routing depends on (run seed, replication, batch size, experts, batches) and the
routing spec only, so every platform and token count sees the same prompts; what the
cache does with it depends on the slots and the policy too, but on no timing
(:mod:`rdusim.engine.coe.outcome`). Both are kept in the run's cache, so the platforms
of a run, and the points of a sweep worker that change only speeds, share them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from rdusim.cache import RunCache
from rdusim.config.workload import resolve_path
from rdusim.config.workload_coe import CoeWorkload, RoutingKind
from rdusim.config.yamlio import load_yaml
from rdusim.errors import InputError
from rdusim.engine.coe.outcome import CacheOutcome, Split, cache_outcome, split_batches
from rdusim.engine.coe.routing import hottest_first, route


@dataclass
class Routings:
    seed: int
    spec: CoeWorkload
    trace_rows: tuple[int, ...]
    cache: RunCache
    _trace_id: str = field(init=False)

    def __post_init__(self) -> None:
        self._trace_id = hashlib.sha256(repr(self.trace_rows).encode()).hexdigest()

    def key(self, batch_size: int, experts: int, batches: int, rep: int) -> tuple:
        """What a routing depends on (a cache key for what is made from it)."""
        return (self.seed, rep, batch_size, experts, batches, self.spec.routing, self._trace_id)

    def routes(self, batch_size: int, experts: int, batches: int, rep: int) -> tuple[np.ndarray, ...]:
        """Expert ids of every batch of replication ``rep`` (read-only arrays)."""
        def make() -> tuple[np.ndarray, ...]:
            rng = np.random.default_rng([self.seed, rep, batch_size, experts])
            flat = route(self.spec.routing, experts, batches * batch_size, rng, self.trace_rows)
            flat.setflags(write=False)
            return tuple(flat[i * batch_size:(i + 1) * batch_size] for i in range(batches))
        return self.cache.get_or_compute("coe_routes", self.key(batch_size, experts, batches, rep), make)

    def hottest(self, experts: int) -> tuple[int, ...]:
        """Experts by expected popularity (warm start and pinning)."""
        return self.cache.get_or_compute(
            "coe_hottest", (experts, self.spec.routing, self._trace_id),
            lambda: tuple(hottest_first(self.spec.routing, experts, self.trace_rows)))

    def outcome(self, batch_size: int, experts: int, batches: int, rep: int, slots: int) -> CacheOutcome:
        """What an expert cache of ``slots`` slots (the spec's policy, warm with the
        hottest experts) does with that routing."""
        return self.cache.get_or_compute(
            "coe_outcome", (self.key(batch_size, experts, batches, rep), slots, self.spec.cache.policy),
            lambda: cache_outcome(slots, self.spec.cache.policy, self.hottest(experts),
                                  self.routes(batch_size, experts, batches, rep),
                                  self.split(batch_size, experts, batches, rep)))

    def split(self, batch_size: int, experts: int, batches: int, rep: int) -> Split:
        """:func:`rdusim.engine.coe.outcome.split_batches` of that routing (every platform's
        cache replays the same lookups)."""
        return self.cache.get_or_compute("coe_split", self.key(batch_size, experts, batches, rep),
                                         lambda: split_batches(self.routes(batch_size, experts, batches, rep)))

    def outcomes(self, batch_size: int, experts: int, batches: int, reps: tuple[int, ...],
                 slots: int) -> CacheOutcome:
        """:meth:`outcome` of each replication in ``reps``, their batches one after another."""
        return self.cache.get_or_compute(
            "coe_outcomes", (self.key(batch_size, experts, batches, -1), reps, slots, self.spec.cache.policy),
            lambda: CacheOutcome.concat([self.outcome(batch_size, experts, batches, r, slots) for r in reps]))


def load_trace(spec: CoeWorkload, file: str) -> tuple[int, ...]:
    """The expert ids of a routing trace (a YAML list beside the workload), checked; () unless
    the routing is a trace."""
    if spec.routing.distribution != RoutingKind.TRACE:
        return ()
    path = resolve_path(spec.routing.trace, file)
    data = load_yaml(path)
    if not isinstance(data, list) or not data or any(isinstance(v, bool) or not isinstance(v, int) or v < 0
                                                     for v in data):
        raise InputError(str(path), "(top level)", "a non-empty YAML list of expert ids (integers >= 0)",
                         data if not isinstance(data, list) else data[:10])
    if max(data) >= spec.experts.count:
        raise InputError(str(path), "(top level)", f"expert ids below experts.count ({spec.experts.count})",
                         max(data))
    return tuple(data)
