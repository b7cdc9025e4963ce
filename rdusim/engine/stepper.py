"""The step interface both engines answer: how long does one step of a deployment take?

A step is a batch of sequences, each computing ``new_tokens`` tokens (a prompt or a
prefill chunk; 1 in decode) over a KV cache that already holds ``context`` tokens.
Model runs, the CoE study, speculative decoding and serving under load all ask this one
interface. Engine steps and compiled plans are kept in the run's
:class:`rdusim.cache.RunCache` (namespaces ``step`` and ``memo``), keyed by content.

One rule for decode, on both machines: a decode step is simulated by its engine at
contexts that are multiples of ``execution.context_bucket_tokens`` (anchors) and the
step at any other context is interpolated linearly between the two anchors around it
(per-step time is affine in the context -- only attention grows with it -- apart
from small quantisation steps that the anchors follow). Engine steps are cached by
content (deployment, phase, batch, tokens), so identical steps are simulated once.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from itertools import accumulate
from typing import TYPE_CHECKING, Callable, Sequence

from rdusim.cache import RunCache
from rdusim.config.deployment import Deployment
from rdusim.engine.breakdown import BREAKDOWN_KEYS
from rdusim.engine.families import family
from rdusim.engine.host_runtime import step_host_s
from rdusim.engine.knots import Cells, Knots
from rdusim.engine.packed_steps import PackedSteps
from rdusim.engine.roofline import roofline_step
from rdusim.engine.step import StepResult
from rdusim.graph.phase import Phase

LONG_RUN = 40             # decode runs of more steps: numpy's curve (faster past about this many)
BATCH_CELLS = Cells(16, 64)   # decode knots in the batch: cells of 16 sequences up to 64, then half octaves

if TYPE_CHECKING:        # annotations only: the serving paths import numpy where they use it
    import numpy as np


class StepModel:
    """Steps of one deployment: exact engine steps (cached) and the interpolation rule."""

    def __init__(self, dep: Deployment, cache: RunCache | None = None) -> None:
        self.dep = dep
        self.cache = cache if cache is not None else RunCache()
        # roofline mode (execution.ideal): the textbook roofline on every family
        self._engine = roofline_step if dep.execution.ideal else family(dep.arch).model_step
        self._times: dict[tuple, float] = {}    # anchor step times by (phase, batch, tokens)
        self._batch_knots: dict[int, Knots] = {}   # decode: context anchor -> knots in the batch
        self._anchor_s: dict[tuple[int, int], float] = {}   # their values by (anchor, batch)
        self._packed: PackedSteps | None = None
        self._prefills: dict[tuple, float] = {}    # packed prefill steps by their pieces

    # ---- exact engine steps ----
    def host_s(self, batch: int, inputs: int = 1, outputs: int = 1) -> float:
        """The stack's host work after a step of ``batch`` sequences given ``inputs`` tokens and
        yielding ``outputs`` per sequence (:mod:`rdusim.engine.host_runtime`); none in roofline
        mode (the ideal machine has no host between steps)."""
        if self.dep.execution.ideal:
            return 0.0
        return step_host_s(self.dep.stack, self.dep.arch, self.dep.model, batch, inputs, outputs)

    def engine_step(self, phase: Phase, batch: int, seq: int) -> StepResult:
        """One engine step, the stack's per-step host work included (a prefill is given its
        prompt and yields the first token)."""
        host = self.host_s(batch, seq if phase == Phase.PREFILL else 1)
        return self.cache.get_or_compute("step", (self.dep, phase, batch, seq),
                                         lambda: self._engine(self.dep, phase, batch, seq, host, self.cache.get))

    def prefill(self, batch: int, tokens: int) -> StepResult:
        return self.engine_step(Phase.PREFILL, batch, tokens)

    def extend(self, batch: int, new_tokens: int, context: int) -> StepResult:
        """One engine step computing ``new_tokens`` tokens per sequence over a KV cache of
        ``context`` tokens, with logits at every new position (verifying a speculative
        draft: k+1 tokens). ``new_tokens`` = 1 is the decode step."""
        if new_tokens == 1:
            return self.engine_step(Phase.DECODE, batch, context)
        host = self.host_s(batch, new_tokens, new_tokens)
        return self.cache.get_or_compute("step", (self.dep, "extend", batch, new_tokens, context),
                                         lambda: self._engine(self.dep, Phase.DECODE, batch, context, host,
                                                              self.cache.get, new_tokens=new_tokens))

    # ---- the interpolation rule ----
    def anchors(self, contexts: "np.ndarray") -> "np.ndarray":
        """The anchor contexts from the one at or below the smallest context to the one at or
        above the largest (multiples of context_bucket_tokens; the first is at least 1)."""
        import numpy as np

        return np.array(self._anchor_list(float(np.min(contexts)), float(np.max(contexts))), dtype=np.int64)

    def _anchor_list(self, lo: float, hi: float) -> list[int]:
        b = self.dep.execution.context_bucket_tokens
        first, last = int(lo // b) * b, int(-(-hi // b)) * b
        return sorted({max(x, 1) for x in range(first, last + b, b)})

    def decode_sums(self, batch: int, first_context: int, steps: int) -> tuple[float, dict[str, float], list[StepResult]]:
        """:meth:`decode` of ``steps`` consecutive steps whose contexts run from
        ``first_context`` up by one token a step, summed: the total time, the total of each
        breakdown part, and the anchor steps. The same rule as :meth:`decode` (linear
        between anchors, exact at them), in plain Python: a model run needs no numpy."""
        xs = self._anchor_list(first_context, first_context + steps - 1)
        anchor = [self.engine_step(Phase.DECODE, batch, x) for x in xs]
        series = {"time": [s.time_s for s in anchor]}
        series.update({k: [s.breakdown_s.get(k, 0.0) for s in anchor] for k in BREAKDOWN_KEYS})
        totals = {k: 0.0 for k in series}
        j = 0
        for c in range(first_context, first_context + steps):
            while j + 1 < len(xs) and xs[j + 1] <= c:
                j += 1
            if c <= xs[j] or j + 1 == len(xs):     # at an anchor (or before the first)
                for k, ys in series.items():
                    totals[k] += ys[j]
            else:
                x0, x1 = xs[j], xs[j + 1]
                for k, ys in series.items():
                    totals[k] += (ys[j + 1] - ys[j]) / (x1 - x0) * (c - x0) + ys[j]
        time = totals.pop("time")
        return time, totals, anchor

    def _interpolated(self, contexts: Sequence[float], step_at: Callable[[int], StepResult]):
        import numpy as np

        ctx = np.asarray(contexts, dtype=float)
        xs = self.anchors(ctx)
        steps = [step_at(int(x)) for x in xs]
        fx = xs.astype(float)
        times = np.interp(ctx, fx, [s.time_s for s in steps])
        parts = {k: np.interp(ctx, fx, [s.breakdown_s.get(k, 0.0) for s in steps]) for k in BREAKDOWN_KEYS}
        return times, parts, steps

    def decode(self, batch: int, contexts: Sequence[float]) -> tuple["np.ndarray", dict[str, "np.ndarray"], list[StepResult]]:
        """Time of a decode step of ``batch`` sequences at each context, its breakdown per
        step, and the anchor steps simulated (the first is at or below the first context)."""
        return self._interpolated(contexts, lambda x: self.engine_step(Phase.DECODE, batch, x))

    def extend_run(self, batch: int, new_tokens: int, contexts: Sequence[float]):
        """:meth:`extend` steps at each context, by the same rule as :meth:`decode`."""
        return self._interpolated(contexts, lambda x: self.extend(batch, new_tokens, x))

    # ---- step times for long runs (serving under load) ----
    # Decode steps: simulated at context anchors (multiples of execution.context_bucket_tokens,
    # the rule above) and, at each anchor, at knots in the batch size (rdusim.engine.knots on
    # BATCH_CELLS: 1 alone, cells of 16 sequences up to 64, then half octaves, checked and
    # halved until affine, so a batch that needs another tile row or another pipeline plan
    # is found); linear between. Prompts packed into a step: rdusim.engine.packed_steps, with
    # the stack's host work per step added here. Values memoised per StepModel by integers.

    def _bare(self, phase: Phase, batch: int, seq: int) -> float:
        """An engine step without the stack's host work."""
        r = self.engine_step(phase, batch, seq)
        return r.time_s - r.breakdown_s.get("host", 0.0)

    def _bare_extend(self, batch: int, new_tokens: int, context: int) -> float:
        r = self.extend(batch, new_tokens, context)
        return r.time_s - r.breakdown_s.get("host", 0.0)

    @property
    def packed(self) -> PackedSteps:
        if self._packed is None:
            ideal = self.dep.execution.ideal          # (roofline steps: the attention grid)
            varlen = None if ideal else family(self.dep.arch).varlen_time(self.dep, self.cache.get)
            self._packed = PackedSteps(self._bare, self._bare_extend, varlen)
        return self._packed

    def _time(self, phase: Phase, batch: int, seq: int) -> float:
        key = (phase, batch, seq)
        t = self._times.get(key)
        if t is None:
            t = self._times[key] = self.engine_step(phase, batch, seq).time_s
        return t

    def _at_anchor(self, anchor: int, batch: int) -> float:
        """A decode step of ``batch`` sequences at anchor context ``anchor``: knots in the batch."""
        t = self._anchor_s.get((anchor, batch))
        if t is None:
            t = self._anchor_s[(anchor, batch)] = self._knot_at(anchor, batch)
        return t

    def _knot_at(self, anchor: int, batch: int) -> float:
        k = self._batch_knots.get(anchor)
        if k is None:
            k = self._batch_knots[anchor] = Knots(lambda b: self._time(Phase.DECODE, b, anchor), BATCH_CELLS)
        return k(batch)

    def decode_s(self, batch: int, context: float) -> float:
        """A decode step of ``batch`` sequences at mean context ``context``."""
        b = self.dep.execution.context_bucket_tokens
        lo = int(context // b) * b
        t0 = self._at_anchor(max(lo, 1), batch)
        if lo == context:
            return t0
        x0 = max(lo, 1)
        return t0 + (self._at_anchor(lo + b, batch) - t0) * (context - x0) / (lo + b - x0)

    def decode_run_s(self, batch: int, context: float, steps: int) -> "np.ndarray":
        """``steps`` consecutive decode steps of ``batch`` sequences whose mean context starts
        at ``context`` and grows by one token per step: decode_s of each, vectorised."""
        import numpy as np

        c = context + np.arange(steps, dtype=float)
        xs = self._anchor_list(float(c[0]), float(c[-1]))     # c grows: its min and max
        return np.interp(c, np.array(xs, dtype=float), [self._at_anchor(x, batch) for x in xs])

    def decode_run_list(self, batch: int, context: float, steps: int, start: float = 0.0,
                        until: float = math.inf) -> tuple[list[float], list[float]]:
        """:meth:`decode_run_s` as lists, for the serving loop: the step times and their ends
        ``start + cumsum(times)``, stopped after the first end at or past ``until``. Short
        runs in plain Python (a numpy call costs more than a run of a few steps), with
        np.interp's and cumsum's formulas in their order: the same floats."""
        b = self.dep.execution.context_bucket_tokens
        last = context + (steps - 1)
        first = int(context // b) * b
        if steps > LONG_RUN or first < 1:
            times = self.decode_run_s(batch, context, steps)
            ends = start + times.cumsum()
            k = min(steps, int(ends.searchsorted(until, side="left")) + 1)
            return times[:k].tolist(), ends[:k].tolist()
        xs = list(range(first, int(-(-last // b)) * b + b, b))
        curve = self._anchor_s
        ys = [curve.get((x, batch)) or self._at_anchor(x, batch) for x in xs]
        times: list[float] = []
        i = 0
        for j in range(len(xs) - 1):     # the steps whose context lies in [xs[j], xs[j + 1])
            x0, x1, y0 = float(xs[j]), float(xs[j + 1]), ys[j]
            e = max(i, min(steps, math.ceil(x1 - context)))
            while e > i and context + (e - 1) >= x1:
                e -= 1
            while e < steps and context + e < x1:
                e += 1
            if e > i:
                slope = (ys[j + 1] - y0) / (x1 - x0)
                seg = [slope * ((context + m) - x0) + y0 for m in range(i, e)]
                if context + i == x0:        # exactly at an anchor: its value
                    seg[0] = y0
                times += seg
                i = e
        if i < steps:                        # at or past the last anchor: its value
            times += [ys[-1]] * (steps - i)
        ends = [start + c for c in accumulate(times)]
        k = min(steps, bisect_left(ends, until) + 1)
        return (times[:k], ends[:k]) if k < steps else (times, ends)

    def packed_prefill_s(self, pieces: Sequence[tuple[int, int]]) -> float:
        """A step computing prompt pieces ``(new_tokens, cached_context)`` packed together
        (rdusim.engine.packed_steps), with the stack's host work for that many sequences
        given that many tokens."""
        key = tuple(pieces)
        t = self._prefills.get(key)
        if t is None:       # a pure function of the pieces: memoised (a serving run repeats them)
            k = len(pieces)
            t = self._prefills[key] = self.packed.packed_s(pieces) + (self.host_s(k, sum(n for n, _ in pieces) / k)
                                                                       if k else 0.0)
        return t

    def mixed_s(self, pieces: Sequence[tuple[int, int]], decode_batch: int, decode_context: float) -> float:
        """Prefill pieces and ``decode_batch`` decodes in one step: the decodes' tokens go
        through the packed step with the pieces' (linear layers, all-reduces: one token each),
        and their attention to their caches is what the engine's decode step of that batch
        at their mean context costs beyond one at context 1."""
        if not pieces:
            return self.decode_s(decode_batch, decode_context) if decode_batch else 0.0
        seqs = len(pieces) + decode_batch
        t = self.packed.packed_s(pieces, decode_batch) + self.host_s(seqs, (sum(n for n, _ in pieces) + decode_batch) / seqs)
        if decode_batch:
            t += self.decode_s(decode_batch, decode_context) - self.decode_s(decode_batch, 1)
        return t
