"""Speculative decoding of one batch, on either machine, from the step interface.

A request is set up once, then the target and the draft both prefill the prompt (the
target's prefill yields the first token). Each speculative step then runs:

- the draft model ``k`` times, one decode step each, at contexts c, c+1, ..., c+k-1;
- the target once over k+1 new tokens at context c (:meth:`StepModel.extend`: a short
  prefill over the cached context, logits at every new position);

and yields E tokens in expectation (:func:`rdusim.config.speculative.expected_tokens`).
Step j (0-based) starts at context c_j = prompt + j E; the remaining ``output - 1`` tokens
take (output - 1) / E steps (the expected count, fractional), each at the mean step time
over the contexts the run visits. Draft and target steps are serial whether they share
devices or not (the next draft starts from the target's verdict).

What each pays follows the stack's runtime (:mod:`rdusim.engine.host_runtime`): every
draft pass is a step of its own -- its launch and, after it, the host's round trip for
its token -- and the verify step is given k+1 tokens and returns k+1 positions' outcome
(token ids, or k+1 positions' logits when the host samples). With ``fused_draft_loop``
the k passes run as one device-side program: they pay the launch the engine charges once
per program (``StepResult.loop_launch_s``: under hardware orchestration the host hands
the schedule over once) and one host round trip, not k; every kernel launch inside the
loop is still paid. Not modelled: the draft re-reading a token it drafted after a full
acceptance, sampling/rejection arithmetic, and moving tokens between separate devices.

Memory, by the one rule of :mod:`rdusim.memory` (weights with their formats, KV cache at the
final context, activation workspace; RDU overflow to DDR): shared placement puts the draft's
shard beside the target's on the same devices; separate placement (tp + draft tp devices in
the node) checks each alone. A deployment that does not fit is an OOM result (``oom`` with
its reason), not a crash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional

from rdusim.config.deployment import Deployment
from rdusim.config.speculative import DraftPlacement, SpeculativeSpec
from rdusim.config.stack import Sampling
from rdusim.engine.breakdown import BREAKDOWN_KEYS, frozen
from rdusim.engine.inference import InferenceTiming, simulate_inference
from rdusim.cache import RunCache
from rdusim.engine.stepper import StepModel
from rdusim.memory import (MemoryNeed, OutOfMemory, activation_workspace_bytes, device_memory, kv_bytes_per_rank,
                           tier_split, weight_bytes_per_rank)


@dataclass(frozen=True)
class SpeculativeTiming:
    tokens_per_step: float             # E: expected tokens per target step
    steps: float                       # expected speculative steps after the first token
    draft_s: float                     # mean draft time per step (k decode passes)
    verify_s: float                    # mean target verification step (k+1 tokens)
    step_s: float                      # draft_s + verify_s
    ttft_s: float                      # set-up + target prefill + draft prefill
    tpot_s: float                      # step_s / E: mean time per output token after the first
    latency_s: float                   # ttft + steps * step_s
    step_breakdown_s: Mapping[str, float]   # one mean speculative step by BREAKDOWN_KEYS
    plain: InferenceTiming             # the same request decoded without a draft
    memory: MemoryNeed                 # the fullest device: target (and draft if shared) by rdusim.memory
    oom: Optional[str]                 # why it does not fit, or None

    @property
    def speedup(self) -> float:
        """Plain latency over speculative latency (the same request)."""
        return self.plain.latency_s / self.latency_s if self.latency_s > 0 else math.nan


def devices_in_node(dep: Deployment) -> int:
    return dep.arch.devices_per_node


def memory_check(target: Deployment, draft: Deployment, spec: SpeculativeSpec, prompt_tokens: int, tokens: int,
                 batch: int) -> MemoryNeed:
    """Per-device memory by the one rule of :mod:`rdusim.memory`: shared placement puts the
    draft's weights and KV cache beside the target's on the same device (one workspace, the
    larger); separate placement checks each model's devices alone (the fuller one is returned)."""
    arch = target.arch
    if spec.placement == DraftPlacement.SHARED:
        w = weight_bytes_per_rank(target.model, target.tp) + weight_bytes_per_rank(draft.model, draft.tp)
        kv = (kv_bytes_per_rank(target.model, target.tp, batch, tokens)
              + kv_bytes_per_rank(draft.model, draft.tp, batch, tokens))
        act = max(activation_workspace_bytes(d, batch, prompt_tokens) for d in (target, draft))
        tiers = tier_split(arch, {"weights": w, "kv_cache": kv}, act)
        return MemoryNeed(arch.DEVICE, w, kv, act, tiers)
    needs = [device_memory(d, batch, tokens, prompt_tokens) for d in (target, draft)]
    bad = [n for n in needs if not n.fits]
    return bad[0] if bad else max(needs, key=lambda n: n.tiers[0].used_bytes)


def simulate_speculative(target: Deployment, draft: Deployment, spec: SpeculativeSpec, prompt_tokens: int,
                         output_tokens: int, batch: int, cache: RunCache | None = None) -> SpeculativeTiming:
    if spec.placement == DraftPlacement.SHARED and draft.tp > target.tp:
        raise ValueError(f"a shared draft needs draft tp ({draft.tp}) <= tp ({target.tp})")
    rt = draft.stack.runtime
    if spec.fused_draft_loop and rt is not None and rt.sampling == Sampling.HOST:
        raise ValueError(f"a fused draft loop needs a stack that samples on the device ({draft.stack.name} samples "
                         "on the host)")
    if spec.placement == DraftPlacement.SEPARATE and target.tp + draft.tp > devices_in_node(target):
        raise ValueError(f"separate placement needs tp {target.tp} + draft tp {draft.tp} devices, the node has "
                         f"{devices_in_node(target)}")
    cache = cache if cache is not None else RunCache()
    plain = simulate_inference(target, prompt_tokens, output_tokens, batch, cache)
    need = memory_check(target, draft, spec, prompt_tokens, prompt_tokens + output_tokens, batch)
    if not need.fits:
        return _oom(spec, plain, need, need.reason)
    try:
        return _timing(target, draft, spec, prompt_tokens, output_tokens, batch, cache, plain, need)
    except OutOfMemory as exc:      # a step the memory rule let through, that the compiler cannot place
        return _oom(spec, plain, need, str(exc))


def _oom(spec: SpeculativeSpec, plain: InferenceTiming, need: MemoryNeed, reason: str) -> SpeculativeTiming:
    nan = math.nan
    return SpeculativeTiming(spec.tokens_per_step, nan, nan, nan, nan, nan, nan, nan,
                             frozen(dict.fromkeys(BREAKDOWN_KEYS, nan)), plain, need, reason)


def _timing(target: Deployment, draft: Deployment, spec: SpeculativeSpec, prompt_tokens: int, output_tokens: int,
            batch: int, cache: RunCache, plain: InferenceTiming, need: MemoryNeed) -> SpeculativeTiming:
    k, e = spec.lookahead, spec.tokens_per_step
    tsteps, dsteps = StepModel(target, cache), StepModel(draft, cache)
    ttft = plain.ttft_s + dsteps.prefill(batch, prompt_tokens).time_s
    n = output_tokens - 1
    steps = n / e
    parts = dict.fromkeys(BREAKDOWN_KEYS, 0.0)
    draft_s = verify_s = 0.0
    if n > 0:
        import numpy as np     # only a speculative run pays for it

        ctx = prompt_tokens + e * np.arange(math.ceil(steps))            # c_j of each step
        v_t, v_parts, _ = tsteps.extend_run(batch, k + 1, ctx)
        d_ctx = (ctx[:, None] + np.arange(k)[None, :]).ravel()           # the draft's k passes per step
        d_t, d_parts, d_anchors = dsteps.decode(batch, d_ctx)
        saved_host = saved_launch = 0.0
        if spec.fused_draft_loop:        # one program for the k passes: one launch, one round trip
            saved_host = (k - 1) * dsteps.host_s(batch)
            saved_launch = (k - 1) * d_anchors[0].loop_launch_s
        draft_s = float(d_t.sum()) / len(ctx) - saved_host - saved_launch
        verify_s = float(v_t.mean())
        for key in BREAKDOWN_KEYS:
            parts[key] = float(v_parts[key].mean()) + float(d_parts[key].sum()) / len(ctx)
        parts["host"] -= saved_host
        parts["launch"] -= saved_launch
    step = draft_s + verify_s
    return SpeculativeTiming(tokens_per_step=e, steps=steps, draft_s=draft_s, verify_s=verify_s, step_s=step,
                             ttft_s=ttft, tpot_s=step / e, latency_s=ttft + steps * step,
                             step_breakdown_s=frozen(parts), plain=plain, memory=need, oom=None)
