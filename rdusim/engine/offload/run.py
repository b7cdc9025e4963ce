"""One request (prefill, then decode steps) with experts offloaded, under a residency
policy and a rule, on routings drawn with the run's Generator.

The step model (the family's engine, ``dep``'s machine and stack) gives each step as if
every routed expert were in HBM; each expert call that misses HBM adds what the rule
makes it cost instead (rdusim.engine.offload.costs): copied, its copy time; run in place,
its in-place time less the device time the step already counted. Calls are serial: copies
do not overlap compute (no prefetch); in-place experts overlap the device's experts of their
layer only with ``overlap_in_place``.
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

    def step(self, counts: np.ndarray, resident: ResidentSet, costs: ExpertCosts, rule: OffloadRule,
             overlap: bool = False) -> float:
        """One step's expert calls; returns the time they add to it. Per layer, the step model
        counted every routed expert's device time; an expert run in place takes its in-place
        time instead (``overlap``: its layer's in-place experts run one after another beside
        the device's experts, the layer waiting for the longer of the two; else after them),
        a copied one adds its copy before it runs."""
        added = 0.0
        layers, experts = counts.shape
        for layer in range(layers):
            device = moved = far = copy = 0.0     # the layer's device time, of it moved in place, in place, copies
            for e in range(experts):
                n = int(counts[layer, e])
                if n == 0:
                    continue
                self.calls += 1
                key = (layer, e)
                dev = costs.device_s(n)
                device += dev
                if key in resident:
                    self.hits += 1
                    resident.hit(key)
                elif costs.runs_in_place(n, rule):
                    t = costs.in_place_s(n)
                    self.in_place += 1
                    self.in_place_busy_s += t
                    if costs.in_place.activation_link is not None:
                        self.activation_bytes += 2 * n * costs.activation_bytes
                    moved += dev
                    far += t
                else:
                    self.copies += 1
                    self.copy_bytes += costs.expert_bytes
                    copy += costs.copy_s
                    resident.copied(key)
            on_device = device - moved
            experts_s = max(on_device, far) if overlap else on_device + far
            added += copy + experts_s - device
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
            base_decode_s: float, initial: list, slots: int, residency: Residency, rule: OffloadRule,
            overlap: bool = False) -> Outcome:
    """One request on given routings: the prefill step's counts, then each decode step's."""
    resident = ResidentSet(residency, initial, slots)
    tally = Tally()
    prefill = base_ttft_s + tally.step(prefill_counts, resident, costs, rule, overlap)
    before = tally.extra_s
    for counts in decode_counts:
        tally.step(counts, resident, costs, rule, overlap)
    return Outcome(prefill, base_decode_s + tally.extra_s - before, tally)
