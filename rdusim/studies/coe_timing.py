"""Router and expert run times for the CoE study, from the one inference path (cached)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from rdusim.config.deployment import Deployment
from rdusim.engine.inference import InferenceTiming, simulate_inference
from rdusim.cache import RunCache

Simulate = Callable[..., InferenceTiming]


@dataclass
class ModelTimer:
    """Times one model deployment; each (batch, tokens) is simulated once. Every run is
    cold: on a CoE node the router and the experts alternate, so each run follows
    another model and loads its own program and arguments first."""

    dep: Deployment
    prompt_tokens: int
    cache: RunCache = field(default_factory=RunCache)
    simulate: Simulate = simulate_inference
    _timings: dict = field(default_factory=dict)

    @property
    def model(self):
        return self.dep.model

    def timing(self, batch: int, output_tokens: int) -> InferenceTiming:
        key = (batch, output_tokens)
        if key not in self._timings:
            self._timings[key] = self.simulate(self.dep, self.prompt_tokens, output_tokens, batch, self.cache,
                                                  cold=True)
        return self._timings[key]

    def simulated(self) -> list[tuple[tuple[int, int], InferenceTiming]]:
        """Every (batch, output_tokens) simulated so far, with its timing, in order."""
        return sorted(self._timings.items())

    def latency_s(self, batch: int, output_tokens: int) -> float:
        return self.timing(batch, output_tokens).latency_s

    def hbm_fraction(self, batch: int, output_tokens: int) -> float:
        """Fraction of the run its kernels are bound by HBM traffic (the memory part of the
        breakdown): what a prefetch copy landing in HBM meanwhile competes with
        (ServingSetup.expert_hbm_fraction)."""
        t = self.timing(batch, output_tokens)
        return min(1.0, t.breakdown_s.get("memory", 0.0) / t.latency_s) if t.latency_s > 0 else 0.0
