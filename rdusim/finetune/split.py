"""Where a fine-tuning step's kernel time goes: forward, backward, recompute, optimizer, dequant.

What an op computes is read off its name (:func:`kernel_part`: rdusim.graph.training, peft
and checkpointing name their ops so). A kernel that fuses ops of several parts -- an RDU
kernel holding a layer's recompute, its dequantise ops and its backward; a GPU GEMM with
its epilogue -- has its time split among its member ops in proportion to each op's roofline
time on the machine, max(FLOPs / peak rate in its format, bytes / HBM bandwidth)
(:func:`op_roofline_s`), so a fused dequant is charged to dequant and not to the GEMM that
reads it.

A step's records name their kernels, not every member op. The members come from the
platform's kernel cut (``Family.kernel_ops``) of a few-layer template of the step's graph
(:class:`KernelShares`): a record's leading op (``k<i>.<first>..<last>`` on the RDU,
``<main op>+<n>`` on a GPU, or the op's own name) is looked up there, its layer number mapped
to the template's (the first layer to the first, the last to the last, every middle layer to
the template's middle one, all alike by construction). A record the template does not hold
(none in the shipped steps) counts whole where its leading op's name puts it.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Sequence

from rdusim.graph.ops import Op
from rdusim.graph.tensor import DType

SPLIT = ("forward", "backward", "recompute", "optimizer", "dequant")
_TIME_KEYS = ("duration_s", "time_s")       # a kernel record's seconds, by family
_KERNEL_PREFIX = re.compile(r"^k\d+\.")
_LAYER = re.compile(r"\bL(\d+)\.")


def kernel_part(name: str) -> str:
    """What an op (or a kernel, by its leading op) computes, by its name."""
    segs = name.split("+")[0].split(".")     # "L3.attn.qkv.rc+2": a kernel of three ops
    if "dequant" in segs:
        return "dequant"
    if "rc" in segs:
        return "recompute"
    if segs[-1] == "optim" or segs[0] == "optim":
        return "optimizer"
    if any(s.startswith("bwd") for s in segs):
        return "backward"
    return "forward"


def op_roofline_s(op: Op, arch: Any) -> float:
    """The op alone at the machine's peaks: max(FLOPs / peak rate in its outputs' format
    (bf16 where the machine has none), bytes / HBM bandwidth)."""
    dtype = op.outputs[0].dtype if op.outputs else DType.BF16
    rate = arch.native_rate(dtype) or arch.native_rate(DType.BF16)
    return max(op.flops / rate if rate else 0.0, op.bytes / arch.device_hbm.bandwidth_bytes_per_s)


def lead_op(record_name: str) -> str:
    """The op a kernel record is named after."""
    return _KERNEL_PREFIX.sub("", record_name).split("..")[0].split("+")[0]


class KernelShares:
    """Each kernel of a template graph's cut, as the share of its time each part takes."""

    def __init__(self, ops: Sequence[Op], kernels: Iterable[Sequence[str]], arch: Any, layers: int, template: int):
        self.layers, self.template = layers, template
        by_name = {op.name: op for op in ops}
        self.of: dict[str, dict[str, float]] = {}
        for kernel in kernels:
            members = [by_name[n] for n in kernel if n in by_name]
            times = {n.name: op_roofline_s(n, arch) for n in members}
            total = sum(times.values())
            shares = dict.fromkeys(SPLIT, 0.0)
            for n in members:
                w = times[n.name] / total if total > 0 else 1.0 / len(members)
                shares[kernel_part(n.name)] += w
            for n in kernel:
                self.of.setdefault(n, shares)

    def _template_layer(self, m: re.Match) -> str:
        i = int(m.group(1))
        if self.layers <= self.template:
            return m.group(0)
        last = self.template - 1
        t = 0 if i == 0 else last if i == self.layers - 1 else min(1, last)
        return f"L{t}."

    def shares(self, record_name: str) -> Mapping[str, float] | None:
        return self.of.get(_LAYER.sub(self._template_layer, lead_op(record_name)))


def split(step: Any, shares: KernelShares | None = None) -> dict[str, float]:
    """Kernel seconds of ``step`` by part (a fused kernel's split by ``shares``; without,
    or for a kernel they do not hold, all under its leading op's part), ``exposed`` the
    rest of the step (launch gaps, host work)."""
    out = dict.fromkeys(SPLIT, 0.0)
    for r in step.records:
        seconds = float(next((r[k] for k in _TIME_KEYS if k in r), 0.0))
        name = str(r.get("name", ""))
        got = shares.shares(name) if shares is not None else None
        if got is None:
            out[kernel_part(name)] += seconds
        else:
            for part, w in got.items():
                out[part] += seconds * w
    out["exposed"] = max(0.0, step.time_s - sum(out.values()))
    return out
