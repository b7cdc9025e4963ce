"""The step interface both engines answer: how long does one step of a deployment take?

A step is a batch of sequences, each computing ``new_tokens`` tokens (a prompt or a
prefill chunk; 1 in decode) over a KV cache that already holds ``context`` tokens.
Model runs, the CoE study and serving under load all ask this one interface.

One rule for decode, on both machines: a decode step is simulated by its engine at
contexts that are multiples of ``execution.context_bucket_tokens`` (anchors) and the
step at any other context is interpolated linearly between the two anchors around it
(per-step time is affine in the context -- only attention grows with it -- apart
from small quantisation steps that the anchors follow). Engine steps are cached by
content (deployment, phase, batch, tokens), so identical steps are simulated once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from rdusim.config.arch_common import ArchKind
from rdusim.config.deployment import Deployment
from rdusim.engine.breakdown import BREAKDOWN_KEYS, frozen
from rdusim.engine.step import StepResult
from rdusim.graph.phase import Phase


class StepCache:
    """An explicit cache of simulated steps and compiled plans for one run, keyed by
    content (frozen, hashable inputs). Pass one to every StepModel of a run."""

    def __init__(self) -> None:
        self._store: dict[tuple, Any] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple, compute: Callable[[], Any]) -> Any:
        if key in self._store:
            self.hits += 1
            return self._store[key]
        self.misses += 1
        value = self._store[key] = compute()
        return value


@dataclass(frozen=True)
class SeqWork:
    new_tokens: int      # tokens computed this step (prompt / prefill chunk; 1 in decode)
    context: int = 0     # tokens already in the sequence's KV cache

    @property
    def is_decode(self) -> bool:
        return self.new_tokens == 1 and self.context > 0


@dataclass(frozen=True)
class StepCost:
    time_s: float
    breakdown_s: Mapping[str, float]      # by BREAKDOWN_KEYS; sums to time_s
    bytes_by_tier: Mapping[str, float]    # off-chip bytes per device
    kernels: int


class StepModel:
    """Steps of one deployment: exact engine steps (cached) and the interpolation rule."""

    def __init__(self, dep: Deployment, cache: StepCache | None = None) -> None:
        self.dep = dep
        self.cache = cache if cache is not None else StepCache()
        if dep.arch.kind == ArchKind.RDU:
            from rdusim.engine.rdu.model_step import model_step
        else:
            from rdusim.engine.gpu.model_step import model_step
        self._engine = model_step

    # ---- exact engine steps ----
    def engine_step(self, phase: Phase, batch: int, seq: int) -> StepResult:
        """One engine step, the stack's per-step host work included."""
        host = self.dep.stack.host.step_s(batch)
        key = ("step", self.dep, phase, batch, seq)
        return self.cache.get(key, lambda: self._engine(self.dep, phase, batch, seq, host, self.cache.get))

    def prefill(self, batch: int, tokens: int) -> StepResult:
        return self.engine_step(Phase.PREFILL, batch, tokens)

    def extend(self, batch: int, new_tokens: int, context: int) -> StepResult:
        """One engine step computing ``new_tokens`` tokens per sequence over a KV cache of
        ``context`` tokens, with logits at every new position (verifying a speculative
        draft: k+1 tokens). ``new_tokens`` = 1 is the decode step."""
        if new_tokens == 1:
            return self.engine_step(Phase.DECODE, batch, context)
        host = self.dep.stack.host.step_s(batch)
        key = ("extend", self.dep, batch, new_tokens, context)
        return self.cache.get(key, lambda: self._engine(self.dep, Phase.DECODE, batch, context, host, self.cache.get,
                                                        new_tokens=new_tokens))

    # ---- the interpolation rule ----
    def anchors(self, contexts: np.ndarray) -> np.ndarray:
        """The anchor contexts bracketing every context (sorted, unique)."""
        b = self.dep.execution.context_bucket_tokens
        lo = np.floor(contexts / b) * b
        hi = np.where(lo == contexts, lo, lo + b)
        return np.unique(np.maximum(np.concatenate([lo, hi]), 1).astype(np.int64))

    def decode(self, batch: int, contexts: Sequence[int]) -> tuple[np.ndarray, dict[str, np.ndarray], list[StepResult]]:
        """Time of a decode step of ``batch`` sequences at each context, its breakdown per
        step, and the anchor steps simulated."""
        ctx = np.asarray(contexts, dtype=float)
        xs = self.anchors(ctx)
        steps = [self.engine_step(Phase.DECODE, batch, int(x)) for x in xs]
        fx, c = xs.astype(float), ctx.astype(float)
        times = np.interp(c, fx, [s.time_s for s in steps])
        parts = {k: np.interp(c, fx, [s.breakdown_s.get(k, 0.0) for s in steps]) for k in BREAKDOWN_KEYS}
        return times, parts, steps

    # ---- any batch of sequences ----
    def step(self, seqs: Sequence[SeqWork]) -> StepCost:
        """One step over a set of sequences. Decode sequences run as one decode batch at
        their mean context (exact under the affine rule); prefill sequences as one
        prefill batch at their mean new tokens (a chunk's attention to context already
        cached is not counted). A step holding both runs the prefill kernels then the
        decode kernels (weights streamed twice, host work once): an upper bound on a
        fused mixed batch."""
        dec = [s for s in seqs if s.is_decode]
        pre = [s for s in seqs if not s.is_decode]
        parts = dict.fromkeys(BREAKDOWN_KEYS, 0.0)
        tiers: dict[str, float] = {}
        kernels = 0
        for group, run in ((pre, self._prefill_group), (dec, self._decode_group)):
            if group:
                t, p, b, k = run(group)
                for key in BREAKDOWN_KEYS:
                    parts[key] += p.get(key, 0.0)
                for tier, v in b.items():
                    tiers[tier] = tiers.get(tier, 0.0) + v
                kernels += k
        if pre and dec:
            parts["host"] -= self.dep.stack.host.per_step_s   # one host step, not two
        return StepCost(sum(parts.values()), frozen(parts), frozen(tiers), kernels)

    def _prefill_group(self, group: Sequence[SeqWork]):
        tokens = max(1, round(sum(s.new_tokens for s in group) / len(group)))
        st = self.prefill(len(group), tokens)
        return st.time_s, dict(st.breakdown_s), dict(st.bytes_by_tier), st.kernels

    def _decode_group(self, group: Sequence[SeqWork]):
        mean_ctx = sum(s.context for s in group) / len(group)
        times, parts, steps = self.decode(len(group), [mean_ctx])
        st = steps[0]
        return float(times[0]), {k: float(v[0]) for k, v in parts.items()}, dict(st.bytes_by_tier), st.kernels
