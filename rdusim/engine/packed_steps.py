"""Packed steps: prompts (or prompt chunks) of several requests computed in one step.

A serving scheduler packs the prompts it admits into one step (vLLM's variable-length
batch: every token of every prompt through the linear layers as one matrix, attention per
sequence). The engines time uniform batches (``b`` sequences of ``n`` tokens) and steps
computing ``n`` new tokens over a cached context; a step of mixed lengths is built from
those engine steps by one rule. Host work is left out (the caller adds the stack's).

The rule. A step of pieces ``(n_i new tokens, c_i cached)``, ``T = sum n_i`` tokens:

    time = R(T) + V(mix)                                             (GPUs, TPU)
    time = S(T) + sum_i n_i (n_i - T) s(T, n_i) + sum_i C(n_i, c_i)    (SN40L)

- ``S(T)``: the engine's prefill of ONE sequence of ``T`` tokens. Everything a step does
  per token -- every linear layer, norm and activation, each layer's all-reduces, the
  weights streamed once -- depends on ``T`` alone and is in S as the engine times it. S is
  simulated at knots (:mod:`rdusim.engine.knots`) on ``TOKEN_CELLS``: cells of 64 tokens
  (the GPUs' GEMM row tile: their time jumps one token after each multiple), wider past
  2048 tokens; cells up to 1024 tokens are halved until affine, so a jump inside a cell
  (another RDU pipeline plan) is found to the token.
- ``R(T)``: ``S(T) - V(one T-token prompt)``, the step without the kernels that change with
  the mix, at knots on the same cells (its attention, whose row blocks jump every few tokens
  with grouped KV heads, is not interpolated: it is in V).
- ``V(mix)`` (engines that time a step as a stream of kernels, a family's ``varlen_time``):
  the step's kernels that change with the mix -- each layer's one variable-length attention
  launch over all the sequences, a chunk's cached keys included, and the kernels working on
  one row per sequence (logits) -- timed by the engine's own kernel cost function for this
  very mix (:mod:`rdusim.engine.varlen`): the attention's CTAs fall into the same waves over
  the SMs as in the engine's step of that mix, so the rule is that step to within R's knot
  tolerance, at any lengths.
- ``s(T, n)`` (the SN40L, whose fused-layer pipelines are compiled for uniform batches):
  what attention among ``n`` tokens instead of ``T`` costs, per token and per key: the
  engine's prefill of ``T/n`` sequences of ``n`` tokens (the same ``T`` tokens) less S(T),
  divided by ``T (n - T)``; on a grid of powers of two in ``T`` and in ``n / T``, bilinear
  in between.
- ``C(n, c)`` (the SN40L): what a piece's ``n`` tokens pay to attend its ``c`` cached tokens
  too (a chunk of a prompt whose earlier chunks ran before): the engine's step of one
  sequence computing ``n`` tokens over ``c`` cached less the same over one, simulated for
  each distinct piece (the RDU's time along ``c`` changes plan too often for knots to pay;
  only a prompt longer than what is left of a step's token budget is chunked, so few pieces
  are); ``b`` equal pieces together are the engine's step of ``b`` such sequences.

A lone prompt is S alone (within the knots' tolerance of the engine at every length). On
the SN40L a lone chunk is S + C and a uniform batch of ``b`` prompts of ``n`` tokens, ``b``
and ``n`` powers of two, is exact; between grid points the attention term is interpolated.
:mod:`tests.test_packed_steps` measures the rule against the engine's own steps for random
mixes, chunks, platforms and TP degrees. Every engine step is cached by content in the
run's cache.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

from rdusim.engine.knots import Cells, Knots
from rdusim.engine.varlen import Mix, mix_of
from rdusim.graph.phase import Phase

# S's cells: 64 tokens (the GPUs' smallest GEMM row tile: their time jumps one token past each
# multiple) up to 2048, 128 up to 4096 (there the jumps are a few percent), then half octaves
# (only static batches padded to their longest prompt reach there); cells starting up to
# 1024 tokens are checked (halved until affine): the engines change plan most at few tokens
TOKEN_CELLS = Cells(64, 2048, (4096,), check_upto=1024)

Bare = Callable[[Phase, int, int], float]         # engine step without host: (phase, batch, tokens)
BareExtend = Callable[[int, int, int], float]     # (batch, new tokens, cached context), without host


class PackedSteps:
    """The rule over one deployment's engine steps (host work excluded). ``varlen``: seconds of
    the engine's kernels that change with the mix of sequences, for any mix (a family's
    ``varlen_time``), or None (the attention grid s and the cached term C)."""

    def __init__(self, bare: Bare, bare_extend: BareExtend, varlen: Optional[Callable[[Mix], float]] = None) -> None:
        self._bare = bare
        self._extend = bare_extend
        self._varlen = varlen
        self.single = Knots(lambda n: bare(Phase.PREFILL, 1, n), TOKEN_CELLS)
        # with V: the knots of S(T) - V(one T-token prompt), what does not change with the mix
        # (its attention's row blocks, which jump every few tokens with grouped KV heads, are V's)
        self._rest = None if varlen is None else Knots(
            lambda n: bare(Phase.PREFILL, 1, n) - self._mix_s((((n, 0), 1),)), TOKEN_CELLS)
        self._grid: dict[tuple, float] = {}
        self._mixes: dict[Mix, float] = {}

    def packed_s(self, pieces: Sequence[tuple[int, int]], singles: int = 0) -> float:
        """A step computing the ``(new_tokens, cached_context)`` pieces together, and
        ``singles`` more one-token sequences (decodes: their attention to their caches is
        the caller's, from the engine's decode steps)."""
        T = sum(n for n, _ in pieces) + singles
        if T <= 0:
            return 0.0
        if self._varlen is not None:     # the engine's kernels for this mix, chunks' cached keys included
            mix = mix_of(list(pieces) + [(1, 0)] * singles)
            return self._rest(T) + self._mix_s(mix)
        extra = singles * (1 - T) * self.slope(T, 1) if singles and T > 1 else 0.0
        chunks: dict[tuple[int, int], int] = {}
        for n, c in pieces:
            if n != T:
                extra += n * (n - T) * self.slope(T, n)
            if c > 0:
                chunks[(n, c)] = chunks.get((n, c), 0) + 1
        for (n, c), b in chunks.items():
            extra += self.cached(b, n, c)
        return self.single(T) + extra

    def _mix_s(self, mix: Mix) -> float:
        """The step's kernels that change with its mix, for ``mix``."""
        t = self._mixes.get(mix)
        if t is None:
            t = self._mixes[mix] = self._varlen(mix)
        return t

    # ---- s(T, n) ----
    def slope(self, tokens: int, length: int) -> float:
        """s(T, n), n <= T: bilinear over the grid T = 2^a, n / T = 2^k."""
        T, n = max(1, tokens), max(1, min(length, tokens))
        a, wt = _octave(T)
        k = math.floor(math.log2(n / T))          # 2^k <= n/T < 2^(k+1), k < 0
        wr = (n / T - 2.0 ** k) / 2.0 ** k
        lo = _lerp(self._slope_at(a, k), self._slope_at(a, k + 1), wr)
        return lo if wt == 0.0 else _lerp(lo, _lerp(self._slope_at(a + 1, k), self._slope_at(a + 1, k + 1), wr), wt)

    def _slope_at(self, a: int, k: int) -> float:
        """s at T = 2^a, n = 2^(a+k); at n = T (where the difference vanishes) the grid's
        next point below."""
        k = max(min(k, -1), -a) if a > 0 else 0
        key = ("s", a, k)
        got = self._grid.get(key)
        if got is None:
            T = 1 << a
            n = T >> -k
            got = self._grid[key] = (self._bare(Phase.PREFILL, T // n, n) - self.single(T)) / (T * (n - T)) if n < T else 0.0
        return got

    # ---- C(n, c) ----
    def cached(self, pieces: int, tokens: int, context: int) -> float:
        """C of ``pieces`` equal pieces of ``tokens`` over ``context``, simulated for them."""
        return self._extend(pieces, tokens, context) - self._extend(pieces, tokens, 1) if context > 1 else 0.0


def _octave(x: int) -> tuple[int, float]:
    """(a, w): 2^a <= x < 2^(a+1) and x's place in that octave, 0..1."""
    a = x.bit_length() - 1
    return a, (x - (1 << a)) / (1 << a)


def _lerp(y0: float, y1: float, w: float) -> float:
    return y0 if w == 0.0 else y0 + (y1 - y0) * w
