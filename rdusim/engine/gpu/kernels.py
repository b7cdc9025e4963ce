"""GPU kernels and how long one takes on one device.

A kernel is what the fusion rules cut from the op graph: a GEMM (with its
epilogue), a fused attention, a vector chain, an embedding gather, or an NCCL
collective. Its time is a roofline over tensor (or vector) compute and HBM
bandwidth, made honest about size:

- GEMMs run as CUTLASS-like CTA tiles over (M, N), optionally split along K
  when there are too few tiles to fill the SMs; tiles are quantised into waves
  over the SMs and padded to the MMA row granularity (skinny decode GEMMs pay
  for the padded rows), a small tile reaches a lower fraction of peak than the
  large one, and a wave of few CTAs can only pull part of the HBM bandwidth.
- Attention is one FlashAttention-style kernel (scores never reach HBM); for
  decode the KV sequence is split (flash-decoding) until the SMs are busy.
- Tensor work runs at the rate and efficiency of the format the kernel multiplies in
  (``KernelWork.dtype``: bf16/fp16, fp8 or int8; the arch file's ``tensor_*_flops_per_s``
  and ``kernel.tensor_*efficiency``); format conversions inside a GEMM or attention kernel
  (weight or KV dequantisation in its prologue, quantisation of its output for the next
  FP8 GEMM in its epilogue) run on the vector units of its active SMs.
- Every kernel lasts at least ``kernel.min_kernel_s`` (launch latency, ramp, tail).
- Collectives: NCCL's algorithms over the NVLink/NVSwitch fabric
  (rdusim.engine.collectives): ring, tree, one-shot and, where the switch reduces
  in the network, NVLS; the fastest for the size unless ``collectives.algorithm``
  fixes one. The chosen algorithm is part of the kernel's time record.

Identical kernels are timed once per run (the run's :class:`rdusim.cache.RunCache`, keyed by
the content of the machine and the kernel's work).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Optional

from rdusim.cache import RunCache, active_cache
from rdusim.config.arch_common import CollectiveAlgorithm
from rdusim.config.arch_gpu import GpuArch
from rdusim.engine.collectives import CollectiveCost, CollectiveOp, collective_cost
from rdusim.graph.tensor import DType


class KernelClass(enum.Enum):
    GEMM = "gemm"              # one GEMM, maybe with elementwise epilogues
    ATTENTION = "attention"    # fused score/softmax/context (FlashAttention)
    VECTOR = "vector"          # elementwise / norm / rotary / softmax / transpose chain
    EMBEDDING = "embedding"    # row gather
    COLLECTIVE = "collective"  # NCCL all-reduce / all-gather over NVLink


CollectiveKind = CollectiveOp      # the kernel-level name of the shared enum


@dataclass(frozen=True)
class GemmShape:
    batch: int      # independent GEMMs in one launch (batched GEMM)
    m: int          # rows per GEMM
    n: int
    k: int


@dataclass(frozen=True)
class AttentionShape:
    heads: int      # batch x KV heads: independent attention problems
    rows: int       # query rows per problem (query tokens x heads per KV group)
    ctx: int        # keys attended to
    head_dim: int
    # further groups of problems (heads, rows, ctx) in the same launch: a variable-length
    # batch (sequences of different lengths packed into one step, rdusim.engine.varlen)
    more: tuple[tuple[int, int, int], ...] = ()

    def groups(self) -> tuple[tuple[int, int, int], ...]:
        """(problems, rows, ctx) of each group of equal problems, the first the shape's own."""
        return ((self.heads, self.rows, self.ctx),) + self.more


@dataclass(frozen=True)
class CollectiveShape:
    kind: CollectiveKind
    ranks: int
    message_bytes: float   # the full tensor each rank ends with


@dataclass(frozen=True)
class KernelWork:
    """What a kernel does, independent of where it sits in the graph (its cache signature)."""

    cls: KernelClass
    flops: float
    hbm_bytes: float
    work_items: int = 1                      # parallel CTAs a vector/embedding kernel offers
    gemm: Optional[GemmShape] = None
    attention: Optional[AttentionShape] = None
    collective: Optional[CollectiveShape] = None
    convert_flops: float = 0.0               # format conversions on the vector units (GEMM/attention kernels)
    dtype: DType = DType.BF16                # the format its tensor cores multiply in


@dataclass(frozen=True)
class Kernel:
    name: str
    ops: tuple[str, ...]        # graph ops it runs
    tag: str                    # role of its main op ("attn.qkv", "attn", "norm", "tp.allreduce"...)
    layer: int
    work: KernelWork


@dataclass(frozen=True)
class KernelTime:
    duration_s: float
    compute_s: float          # roofline compute term (with wave quantisation and tile efficiency)
    memory_s: float           # roofline HBM term (with partial-SM bandwidth)
    collective_s: float       # link time of a collective
    active_sms: int
    waves: int
    hbm_bytes: float          # bytes actually moved (split-K partials included)
    algorithm: Optional[CollectiveAlgorithm] = None   # how a collective ran
    steps: int = 0                                     # its latency steps
    inter_node_s: float = 0.0                          # its inter-node phase (a group spanning nodes)
    wire_bytes: float = 0.0                            # bytes a collective sends over the fabric (energy)

    @property
    def floor_s(self) -> float:
        """Time spent only because every kernel has a minimum duration."""
        return max(0.0, self.duration_s - max(self.compute_s, self.memory_s, self.collective_s))

    @property
    def bound(self) -> str:
        if self.collective_s > 0:
            return "collective"
        if self.floor_s > 0:
            return "floor"
        return "compute" if self.compute_s >= self.memory_s else "memory"


def kernel_time(arch: GpuArch, work: KernelWork, cache: RunCache | None = None) -> KernelTime:
    return active_cache(cache).get_or_compute("gpu_kernel", (arch, work), lambda: _kernel_time(arch, work))


def _kernel_time(arch: GpuArch, work: KernelWork) -> KernelTime:
    if work.cls == KernelClass.COLLECTIVE:
        return _collective_time(arch, work)
    if work.cls == KernelClass.GEMM and work.gemm is not None:
        return _gemm_time(arch, work)
    if work.cls == KernelClass.ATTENTION and work.attention is not None:
        return _attention_time(arch, work)
    return _vector_time(arch, work)


# ---- helpers ----
def _sm_tensor_rate(arch: GpuArch, dtype: DType = DType.BF16) -> float:
    """What one SM's tensor cores reach in large-tile GEMMs at ``dtype``."""
    return arch.device.tensor_rate(dtype) / arch.device.sms * arch.kernel.tensor_efficiency_of(dtype)


def _convert_s(arch: GpuArch, work: KernelWork, ctas: int) -> float:
    """Format conversions of a GEMM/attention kernel on the vector units of its active SMs."""
    if not work.convert_flops:
        return 0.0
    sms = arch.device.sms
    return work.convert_flops / (arch.device.vector_flops_per_s * arch.kernel.vector_efficiency * min(ctas, sms) / sms)


def _bandwidth(arch: GpuArch, active_sms: int) -> float:
    """HBM bandwidth that ``active_sms`` busy SMs can pull."""
    full = arch.device.hbm.effective_bandwidth_bytes_per_s
    need = arch.kernel.hbm_saturation_sm_fraction * arch.device.sms
    return full * min(1.0, active_sms / need)


def tile_efficiency(arch: GpuArch, tm: int, tn: int) -> float:
    """Smaller CTA tiles re-use less data per FLOP and reach a lower fraction of peak."""
    big = arch.kernel.tile_large
    return 1.0 if tm >= big and tn >= big else arch.kernel.small_tile_efficiency


def row_tiles(arch: GpuArch, m: int) -> list[int]:
    """CTA tile heights worth trying for ``m`` rows: the MMA granularity for skinny GEMMs, small, large."""
    km = arch.kernel
    sizes = {km.tile_small, km.tile_large}
    if m <= km.tile_small:
        sizes.add(min(km.mma_m, km.tile_small))
    return sorted(sizes)


def _finish(arch: GpuArch, compute_s: float, memory_s: float, active: int, waves: int,
            nbytes: float, collective_s: float = 0.0) -> KernelTime:
    duration = max(compute_s, memory_s, collective_s, arch.kernel.min_kernel_s)
    return KernelTime(duration, compute_s, memory_s, collective_s, active, waves, nbytes)


def _gemm_time(arch: GpuArch, work: KernelWork) -> KernelTime:
    g = work.gemm
    sms = arch.device.sms
    km = arch.kernel
    best: KernelTime | None = None
    max_split = max(1, g.k // km.split_k_min_depth)
    for tm in row_tiles(arch, g.m):
        for tn in sorted({km.tile_small, km.tile_large}):
            tiles = g.batch * math.ceil(g.m / tm) * math.ceil(g.n / tn)
            split = 1
            while split * 2 <= max_split and tiles * split < sms:   # split K only to fill idle SMs
                split *= 2
            ctas = tiles * split
            waves = math.ceil(ctas / sms)
            k_slice = math.ceil(g.k / split)
            rate = _sm_tensor_rate(arch, work.dtype) * tile_efficiency(arch, tm, tn)
            compute = waves * 2.0 * tm * tn * k_slice / rate
            # W4A16/W8A16-style dequantisation prologue, FP8 quantisation in the epilogue
            compute += _convert_s(arch, work, ctas)
            # split-K partial sums: FP32 partials written and read back once
            partials = (split - 1) * g.batch * g.m * g.n * 4 * 2 if split > 1 else 0.0
            nbytes = work.hbm_bytes + partials
            active = min(ctas, sms)
            memory = nbytes / _bandwidth(arch, active)
            t = _finish(arch, compute, memory, active, waves, nbytes)
            if best is None or t.duration_s < best.duration_s:
                best = t
    return best


def _attention_time(arch: GpuArch, work: KernelWork) -> KernelTime:
    """One FlashAttention launch over every problem of the shape's groups (one group: a
    uniform batch). One CTA tile height for the launch; the KV sequence split alike for all
    problems until the SMs are busy (flash-decoding); CTAs issued longest first in waves over
    the SMs, a wave lasting as long as its longest CTA (equal CTAs: waves x one CTA's time)."""
    a = work.attention
    groups = a.groups()
    sms = arch.device.sms
    km = arch.kernel
    most_rows = max(r for _, r, _ in groups)
    tm = row_tiles(arch, most_rows)[0] if most_rows <= km.tile_small else km.tile_large
    q_blocks = [h * math.ceil(r / tm) for h, r, _ in groups]
    split = 1
    max_split = max(1, math.ceil(max(c for _, _, c in groups) / km.flash_kv_block))
    while split < max_split and sum(q_blocks) * split < sms:
        split += 1
    ctas = sum(q_blocks) * split
    waves = math.ceil(ctas / sms)
    rate = _sm_tensor_rate(arch, work.dtype) * tile_efficiency(arch, tm, min(km.tile_large, a.head_dim))
    # each CTA: (tm x ctx/split) scores and (tm x d) context, padded to the tile height
    per_cta = sorted(((2.0 * 2.0 * tm * math.ceil(c / split) * a.head_dim, q * split)
                      for (_, _, c), q in zip(groups, q_blocks)), reverse=True)
    compute = _wave_s(per_cta, sms) / rate + _convert_s(arch, work, ctas)   # + an fp8 cache's dequantisation
    # softmax exponentials on the vector units, spread over the active SMs
    vec_rate = arch.device.vector_flops_per_s * km.vector_efficiency
    compute += (5.0 * a.heads * a.rows * a.ctx + 5.0 * sum(h * r * c for h, r, c in a.more)) / (vec_rate * min(ctas, sms) / sms)
    partials = (split - 1) * sum(h * r for h, r, _ in groups) * (a.head_dim + 2) * 4 * 2 if split > 1 else 0.0
    nbytes = work.hbm_bytes + partials
    active = min(ctas, sms)
    return _finish(arch, compute, nbytes / _bandwidth(arch, active), active, waves, nbytes)


def _wave_s(per_cta: list[tuple[float, int]], sms: int) -> float:
    """Work of the waves of CTAs (``(work, count)`` longest first) over ``sms`` SMs: each
    wave's longest CTA."""
    total, issued = 0.0, 0
    for work, count in per_cta:
        first = -(-issued // sms)                   # waves whose first CTA is in this run
        issued += count
        total += work * (-(-issued // sms) - first)
    return total


def _vector_time(arch: GpuArch, work: KernelWork) -> KernelTime:
    sms = arch.device.sms
    active = max(1, min(work.work_items, sms))
    waves = math.ceil(max(1, work.work_items) / sms)
    vec_rate = arch.device.vector_flops_per_s * arch.kernel.vector_efficiency * active / sms
    compute = work.flops / vec_rate
    memory = work.hbm_bytes / _bandwidth(arch, active)
    return _finish(arch, compute, memory, active, waves, work.hbm_bytes)


def gpu_collective(arch: GpuArch, kind: CollectiveOp, ranks: int, message_bytes: float) -> CollectiveCost:
    """One NCCL collective on ``ranks`` GPUs of the node, as the library would run it."""
    return collective_cost(kind, ranks, message_bytes, arch.links.nvlink, arch.collectives)


def allreduce_time_s(arch: GpuArch, ranks: int, message_bytes: float) -> float:
    return gpu_collective(arch, CollectiveOp.ALLREDUCE, ranks, message_bytes).time_s


def allgather_time_s(arch: GpuArch, ranks: int, message_bytes: float) -> float:
    """All-gather of a tensor of ``message_bytes`` in total."""
    return gpu_collective(arch, CollectiveOp.ALLGATHER, ranks, message_bytes).time_s


def _collective_time(arch: GpuArch, work: KernelWork) -> KernelTime:
    c = work.collective
    cost = gpu_collective(arch, c.kind, c.ranks, c.message_bytes)
    # NCCL kernels also start and end like any kernel
    duration = max(cost.time_s, arch.kernel.min_kernel_s)
    inter = getattr(cost, "inter_s", 0.0)     # rdusim.engine.collectives_cluster.SpanningCost
    return KernelTime(duration, 0.0, 0.0, duration, 0, 1, work.hbm_bytes, cost.algorithm, cost.steps, inter,
                      cost.wire_bytes)
