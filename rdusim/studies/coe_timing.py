"""Router and expert run times for the CoE study, from the platform engines (cached)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from rdusim.config.arch import ArchSpec
from rdusim.config.model import ModelConfig
from rdusim.config.workload import PlatformSpec
from rdusim.engine.inference import InferenceRequest, InferenceTiming, simulate_inference

Simulate = Callable[[ArchSpec, InferenceRequest], InferenceTiming]


@dataclass
class ModelTimer:
    """Times one model on one platform; each (batch, tokens) is simulated once."""

    arch: ArchSpec
    platform: PlatformSpec
    model: ModelConfig
    prompt_tokens: int
    simulate: Simulate = simulate_inference
    _cache: dict = field(default_factory=dict)

    def timing(self, batch: int, output_tokens: int) -> InferenceTiming:
        key = (batch, output_tokens)
        if key not in self._cache:
            req = InferenceRequest(self.model, self.prompt_tokens, output_tokens, batch, self.platform.tp,
                                   self.platform.fusion, self.platform.launch_mode(self.arch.kind))
            self._cache[key] = self.simulate(self.arch, req)
        return self._cache[key]

    def simulated(self) -> list[tuple[tuple[int, int], InferenceTiming]]:
        """Every (batch, output_tokens) simulated so far, with its timing, in order."""
        return sorted(self._cache.items())

    def latency_s(self, batch: int, output_tokens: int) -> float:
        return self.timing(batch, output_tokens).latency_s
