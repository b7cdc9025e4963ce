"""LoRA adapters served as cheap experts over one base model: their shapes and the batched
adapter kernel of a step.

An adapter's shapes come from the LoRA rewrite of the graph (:mod:`rdusim.graph.peft`): the
forward of one token on one TP rank, rewritten with the adapter's rank and target modules,
gives every adapter weight (A and B matrices: the adapter's bytes per rank), the adapter
GEMMs' FLOPs per token and their activation bytes per token.

A step serving sequences of several adapters runs the base model's step over all of them
and, for each adapted linear, one batched heterogeneous adapter kernel over every adapter
of the step (S-LoRA's MBGMM / Punica's SGMV: each token multiplied by its own adapter's A
and B). Its cost is the machine's roofline of that kernel on one device: the FLOPs of
every token's adapter GEMMs at the device's native bf16 rate, against the bytes it moves
at the device's HBM bandwidth -- each distinct adapter's weights read once per step plus
the tokens' activations. A step of one adapter reads one adapter's weights; a step of 32
reads 32 adapters' (the heterogeneity's cost).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

from rdusim.config.model import ModelConfig
from rdusim.graph.forward import forward_build
from rdusim.graph.ops import OpKind
from rdusim.graph.peft import ADAPTER_TAG, PeftSpec, TrainMethod, apply_peft, is_adapter
from rdusim.graph.phase import Phase
from rdusim.graph.tensor import DType, TensorRole


@dataclass(frozen=True)
class AdapterShape:
    """One LoRA adapter over a model on one TP rank."""

    bytes_per_rank: float          # its A and B weights
    flops_per_token: float         # its GEMMs (and the add into the base output), one token
    activation_bytes_per_token: float   # what its kernels read and write besides the weights
    gemms: int                     # adapter GEMMs per token (batched kernels per step)


def adapter_shape(cfg: ModelConfig, tp: int, rank: int, targets: tuple[str, ...]) -> AdapterShape:
    fb = forward_build(cfg, Phase.PREFILL, 1, 1, tp)
    pf = apply_peft(list(fb.ops), list(fb.idle_weights), cfg, PeftSpec(TrainMethod.LORA, rank=rank, targets=targets), tp)
    ops = [op for op in pf.ops if op.tag == ADAPTER_TAG]
    weights = {t.name: t.nbytes for op in ops for t in op.inputs if t.role == TensorRole.WEIGHT and is_adapter(t.name)}
    w = float(sum(weights.values()))
    return AdapterShape(bytes_per_rank=w, flops_per_token=float(sum(op.flops for op in ops)),
                        activation_bytes_per_token=float(sum(op.bytes for op in ops)) - w,
                        gemms=sum(1 for op in ops if op.kind == OpKind.GEMM))


@dataclass(frozen=True)
class BatchedAdapterKernel:
    """The batched adapter kernels of a step on one device of ``arch``."""

    shape: AdapterShape
    rate_flops_per_s: float        # the device's native bf16 rate
    hbm_bytes_per_s: float         # the device's achievable HBM bandwidth

    @classmethod
    def on(cls, arch, shape: AdapterShape) -> "BatchedAdapterKernel":
        rate = arch.native_rate(DType.BF16)
        return cls(shape, float(rate), float(arch.device_hbm.effective_bandwidth_bytes_per_s))

    def flops(self, tokens: Iterable[int]) -> float:
        return self.shape.flops_per_token * sum(tokens)

    def bytes(self, tokens: Iterable[int]) -> float:
        t = list(tokens)
        n = sum(1 for x in t if x > 0)
        return n * self.shape.bytes_per_rank + self.shape.activation_bytes_per_token * sum(t)

    def time_s(self, tokens: Iterable[int]) -> float:
        """``tokens``: the step's tokens of each distinct adapter."""
        t = list(tokens)
        return max(self.flops(t) / self.rate_flops_per_s, self.bytes(t) / self.hbm_bytes_per_s)


class AdapterCosts:
    """Steps of a base model serving many adapters: the base step over every sequence plus
    the batched adapter kernels (rdusim.serve.multi.GroupCosts)."""

    def __init__(self, base, kernel: BatchedAdapterKernel):
        self.base = base
        self.kernel = kernel

    def prefill_s(self, prompts: Mapping[int, list[int]]) -> float:
        pieces = [(p, 0) for ps in prompts.values() for p in ps]
        return self.base.packed_prefill_s(pieces) + self.kernel.time_s([sum(ps) for ps in prompts.values()])

    def decode_run_s(self, groups: Mapping[int, tuple[int, float]], steps: int) -> np.ndarray:
        n = sum(b for b, _ in groups.values())
        ctx = sum(b * c for b, c in groups.values()) / n
        return self.base.decode_run_s(n, ctx, steps) + self.kernel.time_s([b for b, _ in groups.values()])


class ExpertCosts:
    """Steps of a CoE running several resident experts in one schedule: one segment per
    expert, each its own packed prefill or decode step (its own weights read)."""

    def __init__(self, expert):
        self.expert = expert

    def prefill_s(self, prompts: Mapping[int, list[int]]) -> float:
        return sum(self.expert.packed_prefill_s([(p, 0) for p in ps]) for ps in prompts.values())

    def decode_run_s(self, groups: Mapping[int, tuple[int, float]], steps: int) -> np.ndarray:
        return sum(self.expert.decode_run_s(b, c, steps) for b, c in groups.values())
