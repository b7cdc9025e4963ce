"""The one inference path: serving one batch of a deployment, on either machine.

A request is set up once (the stack's per-request host work; a *cold* request, one that
follows another model on the node, first loads its model's programs -- what the engine
says loading its prefill and decode steps' programs costs, ``StepResult.program_load_s`` --
and pays the stack's per-model-load work), runs its prefill step (which yields the first token),
then ``output_tokens - 1`` decode steps whose KV cache grows by one token each. Every
step comes from :class:`rdusim.engine.stepper.StepModel` (engine kernels, collectives,
launches, plus the stack's per-step host work); decode steps follow its one
interpolation rule. KV bytes use the one formula, ``ModelConfig.kv_cache_bytes_per_rank``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from rdusim.cache import RunCache
from rdusim.config.deployment import Deployment
from rdusim.engine.breakdown import BREAKDOWN_KEYS, frozen
from rdusim.engine.host_runtime import request_host_parts, step_host_parts
from rdusim.engine.stepper import StepModel
from rdusim.memory import kv_bytes_per_rank, weight_bytes_per_rank

__all__ = ["BREAKDOWN_KEYS", "InferenceTiming", "simulate_inference", "frozen", "weight_bytes_per_rank"]


@dataclass(frozen=True)
class InferenceTiming:
    """Serving one batch: request set-up, prefill (first token), then output_tokens-1 decode steps."""

    ttft_s: float                      # request set-up + prefill step
    tpot_s: float                      # mean decode step after the first token
    latency_s: float                   # ttft + (output_tokens - 1) * tpot
    breakdown_s: Mapping[str, float]   # latency split by BREAKDOWN_KEYS; sums to latency_s
    request_s: Mapping[str, float]     # once per request, by BREAKDOWN_KEYS (host: set-up + model load if cold)
    step_s: Mapping[str, float]        # the mean decode step, by BREAKDOWN_KEYS; sums to tpot_s
    weight_bytes_per_device: float     # resident weights on each socket/GPU
    kv_bytes_per_device: float         # KV cache for the batch at full length
    records: tuple[Mapping[str, Any], ...] = field(default=())   # per-kernel rows (one step of each phase)
    # the host parts by the stack's terms (rdusim.engine.host_runtime): once per request, and
    # after each decode step (the same at every context)
    request_host_terms_s: Mapping[str, float] = field(default_factory=dict)
    step_host_terms_s: Mapping[str, float] = field(default_factory=dict)


def simulate_inference(dep: Deployment, prompt_tokens: int, output_tokens: int, batch: int,
                       cache: RunCache | None = None, *, cold: bool = False) -> InferenceTiming:
    """``cold``: the node ran another model before this request (CoE: router and experts
    alternate), so the request first loads its model's program and arguments. Kept in the
    run's cache: a study or sweep point asking again for the same deployment gets it back."""
    cache = cache if cache is not None else RunCache()
    return cache.get_or_compute("inference", (dep, prompt_tokens, output_tokens, batch, cold),
                                lambda: _simulate(dep, prompt_tokens, output_tokens, batch, cache, cold))


def _simulate(dep: Deployment, prompt_tokens: int, output_tokens: int, batch: int, cache: RunCache,
              cold: bool) -> InferenceTiming:
    steps = StepModel(dep, cache)
    prefill = steps.prefill(batch, prompt_tokens)
    n = output_tokens - 1
    tpot = 0.0
    per_step = dict.fromkeys(BREAKDOWN_KEYS, 0.0)
    anchors: list = []
    if n > 0:
        # decode step j (1..n) reads a cache of prompt + j - 1 tokens
        total, split, anchors = steps.decode_sums(batch, prompt_tokens, n)
        tpot = total / n
        for k in BREAKDOWN_KEYS:
            per_step[k] = split[k] / n
    request = dict.fromkeys(BREAKDOWN_KEYS, 0.0)
    host = dep.stack.costs
    # a cold request loads the model's programs: its prefill step's and its decode step's
    programs = prefill.program_load_s + (anchors[0].program_load_s if anchors else 0.0)
    request["host"] = host.per_request_s + (host.per_model_load_s + programs) if cold else host.per_request_s
    parts = {k: request[k] + prefill.breakdown_s.get(k, 0.0) + (split[k] if n > 0 else 0.0) for k in BREAKDOWN_KEYS}
    records = [dict(r, phase="prefill") for r in prefill.records]
    if anchors:
        records += [dict(r, phase="decode") for r in anchors[0].records]
    ttft = request["host"] + prefill.time_s
    latency = ttft + n * tpot
    largest = max(parts, key=parts.get)           # keep the parts summing to the latency exactly
    parts[largest] += latency - sum(parts.values())
    kv = kv_bytes_per_rank(dep.model, dep.tp, batch, prompt_tokens + output_tokens)
    weights = steps.cache.get(("weights", dep.model, dep.tp), lambda: weight_bytes_per_rank(dep.model, dep.tp))
    return InferenceTiming(ttft_s=ttft, tpot_s=tpot, latency_s=latency, breakdown_s=frozen(parts),
                           request_s=frozen(request), step_s=frozen(per_step),
                           weight_bytes_per_device=weights, kv_bytes_per_device=float(kv),
                           records=tuple(records),
                           request_host_terms_s=frozen(request_host_parts(dep.stack, programs, cold)),
                           step_host_terms_s=frozen(step_host_parts(dep.stack, dep.arch, dep.model, batch)
                                                    if n > 0 else {}))
