"""A prefill step of prompts of different lengths packed together, on a kernel-stream engine.

A serving step packs the prompts it admits into one variable-length batch (vLLM): every
token of every prompt goes through the linear layers, norms and all-reduces as one matrix,
exactly as one prompt of all ``T`` tokens would, and each layer's attention is ONE
FlashAttention launch over every sequence, each attending to its own tokens. So on an
engine that times a step as a stream of kernels (GPU, TPU), the step of a mix is the step
of one ``T``-token prompt with each attention kernel given the mix's problems instead: the
same kernel cost function then quantises the mix's CTAs into waves over the SMs (or pads
each sequence to the MXU edge) as it does for a uniform batch, and a uniform batch of ``b``
prompts of ``n`` tokens comes out as the engine's own ``(b, n)`` step (tests/test_varlen.py).

- :func:`packed_kernels`: the kernels of a ``T``-token prefill with the attention swapped
  (what a family's ``packed_step`` simulates: the engine's step of that mix);
- :class:`VarlenAttention`: the attention kernels of a prefill step, timed for any mix from
  the kernels of one small prefill (the serving rule, :mod:`rdusim.engine.packed_steps`,
  adds ``attention(mix) - attention(one T-token prompt)`` to its knots of the ``T``-token
  step: no engine step per distinct ``T``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Optional, Sequence

from rdusim.engine.gpu.kernels import AttentionShape, Kernel, KernelClass, KernelWork

Lengths = tuple[tuple[int, int], ...]      # (tokens of a sequence, sequences that long), longest first
TEMPLATE_TOKENS = 64      # the prefill whose kernels PackedKernels starts from


def lengths_of(tokens: Iterable[int]) -> Lengths:
    """The mix of sequences of these token counts."""
    return tuple(sorted(Counter(int(n) for n in tokens).items(), reverse=True))


def varlen_work(work: KernelWork, tokens: int, lengths: Lengths, window: int | None) -> KernelWork:
    """``work``, the attention kernel of a prefill of one sequence of ``tokens`` tokens, run
    over sequences of ``lengths`` instead: per sequence the same KV heads and query rows per
    token, its own tokens as keys (at most ``window`` with a sliding window). Q, K, V and the
    output move (and an fp8 cache is dequantised) per token; the FLOPs per query and key."""
    a = work.attention
    if a is None or a.more or a.rows % tokens:
        raise ValueError(f"not the attention kernel of one {tokens}-token prompt: {a}")
    group = a.rows // tokens                          # query rows per token: heads per KV head
    ctx = (lambda n: min(n, window)) if window else (lambda n: n)
    groups = [(a.heads * count, n * group, ctx(n)) for n, count in lengths]
    total = sum(n * count for n, count in lengths)
    pairs = sum(h * r * c for h, r, c in groups)
    first, *more = groups
    shape = AttentionShape(first[0], first[1], first[2], a.head_dim, tuple(more))
    return replace(work, attention=shape, flops=work.flops * pairs / (a.heads * a.rows * a.ctx),
                   hbm_bytes=work.hbm_bytes * total / tokens, convert_flops=work.convert_flops * total / tokens,
                   work_items=max(1, round(work.work_items * total / tokens)))


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
    instead of one: each attention kernel (:func:`varlen_work`) and each kernel working on one
    row per sequence (:func:`rows_work`: the other kernels that differ between the engine's
    prefills of one ``tokens``-token prompt and of two prompts of half as many)."""

    attention: tuple[tuple[KernelWork, int], ...]          # distinct attention works, how many per step
    rows: tuple[tuple[KernelWork, KernelWork, int], ...]    # (for one sequence, for two, how many)
    tokens: int
    window: int | None

    @classmethod
    def of(cls, one: Sequence[Kernel], two: Sequence[Kernel], tokens: int,
           window: int | None) -> Optional["PackedKernels"]:
        """None when the step runs no fused attention kernel (eager attention: batched GEMMs)."""
        attention = Counter(k.work for k in one if k.work.cls == KernelClass.ATTENTION)
        if not attention:
            return None
        rows = Counter((a.work, b.work) for a, b in zip(one, two)
                       if a.work != b.work and a.work.cls != KernelClass.ATTENTION)
        return cls(tuple(attention.items()), tuple((a, b, n) for (a, b), n in rows.items()), tokens, window)

    def kernels(self, kernels: Sequence[Kernel], tokens: int, lengths: Lengths) -> tuple[Kernel, ...]:
        """The kernels of a prefill of one ``tokens``-token prompt run as prompts of ``lengths``
        (``tokens`` in all): the engine's step of that mix."""
        if sum(n * c for n, c in lengths) != tokens:
            raise ValueError(f"a mix of {lengths} is not {tokens} tokens")
        rows = sum(c for _, c in lengths)
        per_row = {a: rows_work(a, b, rows) for a, b, _ in self.rows}
        swapped: dict[KernelWork, KernelWork] = {}

        def swap(k: Kernel) -> Kernel:
            if k.work.cls == KernelClass.ATTENTION:
                w = swapped.get(k.work)
                if w is None:
                    w = swapped[k.work] = varlen_work(k.work, tokens, lengths, self.window)
                return replace(k, work=w)
            return replace(k, work=per_row[k.work]) if k.work in per_row else k

        return tuple(map(swap, kernels))

    def time_s(self, lengths: Lengths, time: Callable[[KernelWork], float]) -> float:
        """The changing kernels of a step of prompts of ``lengths``, timed by ``time``."""
        rows = sum(c for _, c in lengths)
        return (sum(m * time(varlen_work(w, self.tokens, lengths, self.window)) for w, m in self.attention)
                + sum(m * time(rows_work(a, b, rows)) for a, b, m in self.rows))


StepKernels = Callable[[int, int], Sequence[Kernel]]    # (sequences, tokens each) -> a prefill's kernels


def template(step_kernels: StepKernels, window: int | None) -> Optional[PackedKernels]:
    """PackedKernels from the engine's prefills of TEMPLATE_TOKENS tokens as one and two prompts."""
    return PackedKernels.of(step_kernels(1, TEMPLATE_TOKENS), step_kernels(2, TEMPLATE_TOKENS // 2),
                            TEMPLATE_TOKENS, window)


def packed_step_kernels(step_kernels: StepKernels, lengths: Lengths, window: int | None) -> Optional[tuple[Kernel, ...]]:
    """The kernels of the prefill step of prompts of ``lengths`` packed together, or None (no
    fused attention: eager attention's batched GEMMs are not cut per sequence here)."""
    pk = template(step_kernels, window)
    tokens = sum(n * c for n, c in lengths)
    return None if pk is None else pk.kernels(step_kernels(1, tokens), tokens, lengths)


def varlen_timer(step_kernels: StepKernels, window: int | None,
                 time: Callable[[KernelWork], float]) -> Optional[Callable[[Lengths], float]]:
    """Seconds of the kernels of a prefill step that change with its mix of prompts, for any
    mix (the serving rule's term), or None (no fused attention)."""
    pk = template(step_kernels, window)
    return None if pk is None else (lambda lengths: pk.time_s(lengths, time))
