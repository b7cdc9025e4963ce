"""One request (prefill, then decode steps) with experts offloaded, under a residency
policy and a rule, on routings drawn with the run's Generator.

The step model (the family's engine, ``dep``'s machine and stack) gives each step as if
every routed expert were in HBM; each expert call that misses HBM adds what the rule
makes it cost instead (rdusim.engine.offload.costs): copied, its copy time; run in place,
its in-place time less the device time the step already counted. Calls are serial: copies
do not overlap compute and in-place experts do not overlap the device's (no prefetch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rdusim.config.offload import OffloadRule, Residency
from rdusim.engine.offload.costs import ExpertCosts
from rdusim.engine.offload.residency import ResidentSet


@dataclass
class Tally:
    """What a request's expert calls added (sums over its steps)."""

    extra_s: float = 0.0              # time added to the steps
    calls: int = 0                    # expert calls with at least one token
    hits: int = 0                     # of them, in HBM
    copies: int = 0
    in_place: int = 0
    copy_bytes: float = 0.0           # weights copied into HBM
    activation_bytes: float = 0.0     # activations sent to in-place experts and back
    in_place_busy_s: float = 0.0      # time the in-place executor (the CPU) computes

    def step(self, counts: np.ndarray, resident: ResidentSet, costs: ExpertCosts, rule: OffloadRule) -> float:
        """One step's expert calls; returns the time they add to it."""
        added = 0.0
        layers, experts = counts.shape
        for layer in range(layers):
            for e in range(experts):
                n = int(counts[layer, e])
                if n == 0:
                    continue
                self.calls += 1
                key = (layer, e)
                if key in resident:
                    self.hits += 1
                    resident.hit(key)
                elif costs.runs_in_place(n, rule):
                    t = costs.in_place_s(n)
                    self.in_place += 1
                    self.in_place_busy_s += t
                    if costs.in_place.activation_link is not None:
                        self.activation_bytes += 2 * n * costs.activation_bytes
                    added += t - costs.device_s(n)
                else:
                    self.copies += 1
                    self.copy_bytes += costs.expert_bytes
                    added += costs.copy_s
                    resident.copied(key)
        self.extra_s += added
        return added


@dataclass(frozen=True)
class Outcome:
    prefill_s: float
    decode_s: float
    tally: Tally

    @property
    def latency_s(self) -> float:
        return self.prefill_s + self.decode_s


def request(costs: ExpertCosts, prefill_counts: np.ndarray, decode_counts: list[np.ndarray], base_ttft_s: float,
            base_decode_s: float, initial: list, slots: int, residency: Residency, rule: OffloadRule) -> Outcome:
    """One request on given routings: the prefill step's counts, then each decode step's."""
    resident = ResidentSet(residency, initial, slots)
    tally = Tally()
    prefill = base_ttft_s + tally.step(prefill_counts, resident, costs, rule)
    before = tally.extra_s
    for counts in decode_counts:
        tally.step(counts, resident, costs, rule)
    return Outcome(prefill, base_decode_s + tally.extra_s - before, tally)
