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
        self._times: dict[tuple, float] = {}    # anchor step times by (phase, batch, tokens)

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

    # ---- bucketed step times for long runs (serving under load) ----
    # Engine steps are simulated only at anchors -- batch sizes that are powers of two,
    # contexts / prompt lengths at multiples of execution.context_bucket_tokens -- and
    # interpolated linearly between them, so a run of thousands of steps simulates a few
    # dozen. Times are memoised per StepModel by plain integers (cheap to hash).

    def _time(self, phase: Phase, batch: int, seq: int) -> float:
        key = (phase, batch, seq)
        t = self._times.get(key)
        if t is None:
            t = self._times[key] = self.engine_step(phase, batch, seq).time_s
        return t

    def _ctx_interp(self, phase: Phase, batch: int, x: float) -> float:
        """The one rule: linear between anchors every context_bucket_tokens (first anchor 1)."""
        b = self.dep.execution.context_bucket_tokens
        lo = int(x // b) * b
        if lo == x:
            return self._time(phase, batch, max(lo, 1))
        t0, t1 = self._time(phase, batch, max(lo, 1)), self._time(phase, batch, lo + b)
        x0 = max(lo, 1)
        return t0 + (t1 - t0) * (x - x0) / (lo + b - x0)

    def decode_s(self, batch: int, context: float) -> float:
        """A decode step of ``batch`` sequences at mean context ``context``: the context rule
        at batch sizes that are powers of two, linear in the batch between them."""
        lo = 1 << (max(1, batch).bit_length() - 1)
        t0 = self._ctx_interp(Phase.DECODE, lo, context)
        if lo == batch:
            return t0
        t1 = self._ctx_interp(Phase.DECODE, 2 * lo, context)
        return t0 + (t1 - t0) * (batch - lo) / lo

    def decode_run_s(self, batch: int, context: float, steps: int) -> np.ndarray:
        """``steps`` consecutive decode steps of ``batch`` sequences whose mean context starts
        at ``context`` and grows by one token per step: decode_s of each, vectorised."""
        c = context + np.arange(steps, dtype=float)
        lo = 1 << (max(1, batch).bit_length() - 1)
        t = self._ctx_curve(lo, c)
        if lo != batch:
            t = t + (self._ctx_curve(2 * lo, c) - t) * ((batch - lo) / lo)
        return t

    def _ctx_curve(self, batch: int, c: np.ndarray) -> np.ndarray:
        b = self.dep.execution.context_bucket_tokens
        first, last = int(c[0] // b) * b, int(-(-c[-1] // b)) * b
        xs = list(range(first, last + b, b))
        ys = [self._time(Phase.DECODE, batch, max(x, 1)) for x in xs]
        xs[0] = max(xs[0], 1)
        return np.interp(c, xs, ys)

    def prefill_s(self, tokens: float) -> float:
        """One sequence's prefill of ``tokens`` tokens (the context rule over prompt lengths)."""
        return self._ctx_interp(Phase.PREFILL, 1, max(tokens, 1.0))

    def packed_prefill_s(self, pieces: Sequence[tuple[int, int]]) -> float:
        """A step computing prompt pieces ``(new_tokens, cached_context)`` packed together
        (variable-length attention, weights streamed once): the fixed cost of a step
        F = prefill_s(1) once, plus for every piece the work the prefill of its whole
        sequence does on those tokens, prefill_s(c + n) - prefill_s(c) with prefill_s(0) = F
        (its linear layers and its causal attention to everything before it), plus the
        stack's per-sequence host work of the other pieces."""
        fixed = self.prefill_s(1)
        work = sum(self.prefill_s(c + n) - (self.prefill_s(c) if c > 0 else fixed) for n, c in pieces)
        return fixed + work + self.dep.stack.host.per_sequence_step_s * (len(pieces) - 1)

    def mixed_s(self, pieces: Sequence[tuple[int, int]], decode_batch: int, decode_context: float) -> float:
        """Prefill pieces and ``decode_batch`` decodes in one fused step: the packed prefill,
        plus what the decodes add over a lone one-token step (their KV reads and tokens)."""
        if not pieces:
            return self.decode_s(decode_batch, decode_context) if decode_batch else 0.0
        t = self.packed_prefill_s(pieces)
        if decode_batch:
            t += self.decode_s(decode_batch, decode_context) - self.decode_s(1, 1)
            t += self.dep.stack.host.per_sequence_step_s
        return t

    def _prefill_group(self, group: Sequence[SeqWork]):
        tokens = max(1, round(sum(s.new_tokens for s in group) / len(group)))
        st = self.prefill(len(group), tokens)
        return st.time_s, dict(st.breakdown_s), dict(st.bytes_by_tier), st.kernels

    def _decode_group(self, group: Sequence[SeqWork]):
        mean_ctx = sum(s.context for s in group) / len(group)
        times, parts, steps = self.decode(len(group), [mean_ctx])
        st = steps[0]
        return float(times[0]), {k: float(v[0]) for k, v in parts.items()}, dict(st.bytes_by_tier), st.kernels
