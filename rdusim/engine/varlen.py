"""A prefill step of prompts of different lengths packed together, on a kernel-stream engine.

A serving step packs the prompts it admits into one variable-length batch (vLLM): every
token of every prompt goes through the linear layers, norms and all-reduces as one matrix,
exactly as one prompt of all ``T`` tokens would, and each layer's attention is ONE
FlashAttention launch over every sequence, each attending to its own tokens (a later chunk
of a long prompt: also to its earlier chunks' tokens in the KV cache). So on an engine that
times a step as a stream of kernels (GPU, TPU), the step of a mix is the step of one
``T``-token prompt with each attention kernel given the mix's problems instead, and the
kernels that work on one row per sequence (the logits of each sequence's last token, their
all-gather) given one row per sequence: the same kernel cost function then quantises the
mix's CTAs into waves over the SMs (or pads each sequence to the MXU edge) as it does for a
uniform batch, and a uniform batch of ``b`` prompts of ``n`` tokens comes out as the
engine's own ``(b, n)`` step (tests/test_packed_steps.py).

:class:`PackedKernels` holds what changes, taken from the engine's kernels of a few small
steps (a prefill of TEMPLATE_TOKENS tokens as one prompt and as two, and a chunk of as many
tokens over two cached contexts): :meth:`~PackedKernels.kernels` gives a family's
``packed_step`` (the engine's step of a mix) and :meth:`~PackedKernels.time_s` the serving
rule's term, each family's :class:`KernelStream` supplying its own kernel cut and timing (:mod:`rdusim.engine.packed_steps` adds ``time_s(mix) - time_s(one T-token
prompt)`` to its knots of the ``T``-token step: no engine step per distinct ``T``).
"""

from __future__ import annotations

from collections import Counter
from functools import cached_property
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Optional, Sequence

from rdusim.engine.gpu.kernels import AttentionShape, Kernel, KernelClass, KernelWork
from rdusim.graph.phase import Phase

Mix = tuple[tuple[tuple[int, int], int], ...]   # ((new tokens, cached tokens), how many such sequences)
TEMPLATE_TOKENS = 64      # the steps PackedKernels starts from: prefills and chunks of this many tokens


def mix_of(pieces: Iterable[tuple[int, int]]) -> Mix:
    """The mix of sequences computing ``(new tokens, cached tokens)`` each, in a canonical order."""
    return tuple(sorted(Counter((int(n), int(c)) for n, c in pieces).items(), reverse=True))


def mix_tokens(mix: Mix) -> int:
    """New tokens of the mix."""
    return sum(n * count for (n, _), count in mix)


@dataclass(frozen=True)
class Cached:
    """What one cached token adds to an attention kernel: its K and V read from HBM (bytes)
    and, with a quantised cache, dequantised (FLOPs)."""

    bytes: float = 0.0
    convert_flops: float = 0.0


def varlen_work(work: KernelWork, tokens: int, mix: Mix, window: int | None, cached: Cached) -> KernelWork:
    """``work``, the attention kernel of a prefill of one sequence of ``tokens`` tokens, run
    over the sequences of ``mix`` instead: per sequence the same KV heads and query rows per
    token, its cached and new tokens as keys (at most ``window`` with a sliding window). Q, K,
    V and the output move (and a quantised cache's new entries are converted) per new token,
    the cache is read per cached token (``cached``); the FLOPs go per query and key."""
    a = work.attention
    if a is None or a.more or a.rows % tokens:
        raise ValueError(f"not the attention kernel of one {tokens}-token prompt: {a}")
    group = a.rows // tokens                          # query rows per token: heads per KV head
    ctx = (lambda n: min(n, window)) if window else (lambda n: n)
    groups = [(a.heads * count, n * group, ctx(n + c)) for (n, c), count in mix]
    new = mix_tokens(mix) / tokens
    old = sum(c * count for (_, c), count in mix)
    pairs = sum(h * r * c for h, r, c in groups)
    first, *more = groups
    shape = AttentionShape(first[0], first[1], first[2], a.head_dim, tuple(more))
    return replace(work, attention=shape, flops=work.flops * pairs / (a.heads * a.rows * a.ctx),
                   hbm_bytes=work.hbm_bytes * new + cached.bytes * old,
                   convert_flops=work.convert_flops * new + cached.convert_flops * old,
                   work_items=max(1, round(work.work_items * new)))


def rows_work(one: KernelWork, two: KernelWork, rows: int) -> KernelWork:
    """A kernel working on one row per sequence (the logits of each sequence's last token,
    their all-gather across TP ranks) for ``rows`` sequences, from the same kernel for one
    sequence and for two: its rows, FLOPs, bytes and message affine in the sequences."""
    if rows == 1:
        return one
    more = rows - 1

    def at(x1, x2):
        return x1 + (x2 - x1) * more

    gemm = replace(one.gemm, m=at(one.gemm.m, two.gemm.m)) if one.gemm is not None else None
    coll = one.collective
    if coll is not None:
        coll = replace(coll, message_bytes=at(coll.message_bytes, two.collective.message_bytes))
    return replace(one, gemm=gemm, collective=coll, flops=at(one.flops, two.flops),
                   hbm_bytes=at(one.hbm_bytes, two.hbm_bytes), work_items=at(one.work_items, two.work_items))


@dataclass(frozen=True)
class PackedKernels:
    """What changes in a deployment's prefill step when its ``T`` tokens are several prompts
    (or prompt chunks) instead of one (module docstring)."""

    attention: tuple[tuple[KernelWork, Cached], ...]       # each attention kernel of a step, in order
    rows: tuple[tuple[KernelWork, KernelWork], ...]         # each per-sequence kernel: for one sequence, for two
    tokens: int
    window: int | None

    @classmethod
    def of(cls, one: Sequence[Kernel], two: Sequence[Kernel], chunk: Sequence[Kernel], longer: Sequence[Kernel],
           tokens: int, context: int, window: int | None) -> Optional["PackedKernels"]:
        """From the engine's kernels of a prefill of ``tokens`` tokens as ``one`` prompt and as
        ``two``, and of a ``chunk`` of as many over one cached token and over ``context``
        (``longer``). None when the step runs no fused attention kernel (eager attention:
        batched GEMMs, not cut per sequence here)."""
        attention = [k.work for k in one if k.work.cls == KernelClass.ATTENTION]
        if not attention:
            return None
        more = context - 1
        cached = [Cached((b.hbm_bytes - a.hbm_bytes) / more, (b.convert_flops - a.convert_flops) / more)
                  for a, b in zip(_attention(chunk), _attention(longer))]
        if len(cached) != len(attention):
            raise ValueError("a chunk's step runs another number of attention kernels than a prompt's")
        rows = tuple((a.work, b.work) for a, b in zip(one, two)
                     if a.work != b.work and a.work.cls != KernelClass.ATTENTION)
        return cls(tuple(zip(attention, cached)), rows, tokens, window)

    def kernels(self, kernels: Sequence[Kernel], tokens: int, mix: Mix) -> tuple[Kernel, ...]:
        """The kernels of a prefill of one ``tokens``-token prompt run as the sequences of
        ``mix`` (``tokens`` new tokens in all): the engine's step of that mix."""
        if mix_tokens(mix) != tokens:
            raise ValueError(f"a mix of {mix} is not {tokens} tokens")
        rows = sum(count for _, count in mix)
        per_row = {a: rows_work(a, b, rows) for a, b in self.rows}
        attention = iter(self.attention)

        def swap(k: Kernel) -> Kernel:
            if k.work.cls == KernelClass.ATTENTION:
                _, cached = next(attention)
                return replace(k, work=varlen_work(k.work, tokens, mix, self.window, cached))
            return replace(k, work=per_row[k.work]) if k.work in per_row else k

        return tuple(map(swap, kernels))

    def time_s(self, mix: Mix, time: Callable[[KernelWork], float]) -> float:
        """The changing kernels of a step of the sequences of ``mix``, timed by ``time``."""
        rows = sum(count for _, count in mix)
        attention, per_row = self._distinct
        works = Counter()
        for (w, c), m in attention.items():          # each distinct kernel changed once (layers repeat)
            works[varlen_work(w, self.tokens, mix, self.window, c)] += m
        for (a, b), m in per_row.items():
            works[rows_work(a, b, rows)] += m
        return sum(m * time(w) for w, m in works.items())

    @cached_property
    def _distinct(self) -> tuple[Counter, Counter]:
        """The attention and per-sequence kernels, each distinct one with its count."""
        return Counter(self.attention), Counter(self.rows)


def _attention(kernels: Sequence[Kernel]) -> list[KernelWork]:
    return [k.work for k in kernels if k.work.cls == KernelClass.ATTENTION]


Steps = Callable[[int, int, int], Sequence[Kernel]]   # (sequences, new tokens each, cached context) -> kernels
CONTEXT = 1 + TEMPLATE_TOKENS      # the template chunk's longer cached context


def template(steps: Steps, window: int | None) -> Optional[PackedKernels]:
    """PackedKernels from the engine's steps (a prefill when the cached context is 0)."""
    n = TEMPLATE_TOKENS
    return PackedKernels.of(steps(1, n, 0), steps(2, n // 2, 0), steps(1, n, 1), steps(1, n, CONTEXT), n, CONTEXT,
                            window)


@dataclass(frozen=True)
class KernelStream:
    """A family whose engine times a step as a stream of kernels (GPU, TPU), for packed steps:
    ``step_kernels(dep, phase, batch, seq, memo, new_tokens)`` cuts a step into kernels,
    ``simulate(dep, kernels, host_s)`` times them, ``timer(dep)`` times one kernel's work."""

    step_kernels: Callable[..., Sequence[Kernel]]
    simulate: Callable[..., Any]
    timer: Callable[[Any], Callable[[KernelWork], float]]

    def _steps(self, dep, memo) -> Steps:
        def steps(batch: int, tokens: int, context: int) -> Sequence[Kernel]:
            if context == 0:
                return self.step_kernels(dep, Phase.PREFILL, batch, tokens, memo)
            return self.step_kernels(dep, Phase.DECODE, batch, context, memo, new_tokens=tokens)   # a chunk
        return steps

    def packed_step(self, dep, mix: Mix, host_s: float, memo) -> Any:
        """The prefill step of the sequences of ``mix`` packed together, or None (no fused
        attention: eager attention's batched GEMMs are not cut per sequence here)."""
        steps = self._steps(dep, memo)
        pk = template(steps, dep.model.sliding_window)
        if pk is None:
            return None
        tokens = mix_tokens(mix)
        return self.simulate(dep, pk.kernels(steps(1, tokens, 0), tokens, mix), host_s)

    def varlen_time(self, dep, memo) -> Optional[Callable[[Mix], float]]:
        """Seconds of a prefill step's kernels that change with its mix of sequences, for any
        mix (the serving rule's term), or None (no fused attention)."""
        pk = template(self._steps(dep, memo), dep.model.sliding_window)
        if pk is None:
            return None
        time = self.timer(dep)
        return lambda mix: pk.time_s(mix, time)
