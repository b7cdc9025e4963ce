"""The one question every study asks of an engine: how long does serving a model take?

Both engines (``rdusim.engine.rdu.inference`` and ``rdusim.engine.gpu.inference``)
implement :func:`simulate_inference` with this signature and return InferenceTiming.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from rdusim.config.arch import ArchSpec
from rdusim.config.arch_common import ArchKind
from rdusim.config.model import ModelConfig
from rdusim.config.policy import FusionPolicy, LaunchMode

# latency breakdown categories, shared by engines and reports
BREAKDOWN_KEYS = ("compute", "memory", "launch", "collective", "host")


@dataclass(frozen=True)
class InferenceRequest:
    model: ModelConfig
    prompt_tokens: int
    output_tokens: int
    batch: int
    tp: int
    fusion: FusionPolicy
    launch: LaunchMode


@dataclass(frozen=True)
class InferenceTiming:
    """Serving one batch: prefill (yields the first token) then output_tokens-1 decode steps."""

    ttft_s: float                      # prefill step, including its launches and host time
    tpot_s: float                      # mean decode step after the first token
    latency_s: float                   # ttft + (output_tokens - 1) * tpot
    breakdown_s: Mapping[str, float]   # latency split by BREAKDOWN_KEYS; sums to latency_s
    weight_bytes_per_device: float     # resident weights on each socket/GPU
    kv_bytes_per_device: float         # KV cache for the batch at full length
    records: tuple[Mapping[str, Any], ...] = field(default=())   # per-kernel rows (one step of each phase)


def simulate_inference(arch: ArchSpec, req: InferenceRequest) -> InferenceTiming:
    if arch.kind == ArchKind.RDU:
        from rdusim.engine.rdu.inference import simulate_inference as run
    else:
        from rdusim.engine.gpu.inference import simulate_inference as run
    return run(arch, req)


def frozen(mapping: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(mapping))
