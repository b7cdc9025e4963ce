"""Which activations a step materialises off chip, from the kernels the machine runs it as.

The one rule, for every machine and fusion policy: an activation lives in HBM when a
kernel boundary cuts it -- it is produced by one kernel and read by another, or it
leaves the step (no op reads it: logits, a layer's output), or it enters the step from
outside (token ids). What one kernel produces and consumes itself never reaches HBM: a
GPU kernel keeps it in registers and shared memory (FlashAttention's score matrix, a
GEMM epilogue's input), a fused RDU kernel streams it through its PMU stage buffers.

The kernels are given as the op names each runs, in launch order, exactly as the
machine's engine cut the graph for its timing (:func:`rdusim.engine.gpu.fusion_rules.partition`,
:func:`rdusim.compiler.fusion.partition`); an op of the graph that no kernel runs is a
view (a reshape or slice everywhere, a transpose or concat on a fused RDU): its output
is the tensors it reads, seen another way. A view of a materialised tensor holds no
bytes of its own, and reading a view reads (keeps live) the whole tensor under it.

A kernel's activation footprint is the materialised tensors it reads plus those it
writes; the step's workspace is the largest footprint of one kernel (weights, KV cache,
gradients and optimizer state are counted apart, as resident tensors).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from rdusim.graph.ops import Op
from rdusim.graph.tensor import Tensor, TensorRole

ACTIVATION_ROLES = frozenset({TensorRole.ACTIVATION, TensorRole.INPUT})


@dataclass(frozen=True)
class KernelFootprint:
    """The materialised activations one kernel reads from and writes to HBM (tensor names)."""

    reads: frozenset[str]
    writes: frozenset[str]

    @property
    def tensors(self) -> frozenset[str]:
        return self.reads | self.writes


@dataclass(frozen=True)
class Materialised:
    """What a step's kernels materialise: per kernel, and the tensors by name."""

    kernels: tuple[KernelFootprint, ...]
    tensors: Mapping[str, Tensor]        # every materialised activation, by name

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.tensors)

    def footprint_bytes(self, i: int) -> float:
        """Bytes of the materialised activations kernel ``i`` reads and writes."""
        return float(sum(self.tensors[n].nbytes for n in self.kernels[i].tensors))

    @property
    def workspace_bytes(self) -> float:
        """The largest activation footprint of one kernel of the step."""
        return max((self.footprint_bytes(i) for i in range(len(self.kernels))), default=0.0)


def materialised(ops: Iterable[Op], kernels: Sequence[Sequence[str]]) -> Materialised:
    """The activations the step of ``ops`` materialises when it runs as ``kernels`` (each
    the names of the ops one kernel runs, in launch order; ops in no kernel are views)."""
    ops = list(ops)
    kernel_of: dict[str, int] = {}
    for i, names in enumerate(kernels):
        for name in names:
            kernel_of[name] = i
    known = {op.name for op in ops}
    missing = [n for n in kernel_of if n not in known]
    if missing:
        raise ValueError(f"kernels run ops the graph does not have: {missing[:3]}")
    roots: dict[str, tuple[str, ...]] = {}      # view tensor -> the real tensors under it
    producer: dict[str, int] = {}               # real activation -> kernel writing it
    readers: dict[str, set[int]] = {}           # real activation -> kernels reading it
    tensors: dict[str, Tensor] = {}
    reads: list[set[str]] = [set() for _ in kernels]

    def under(t: Tensor) -> tuple[str, ...]:
        return roots.get(t.name, (t.name,))

    for op in ops:
        k = kernel_of.get(op.name)
        ins = [t for t in op.inputs if t.role in ACTIVATION_ROLES]
        for t in ins:
            if t.name not in roots:                          # a real tensor (maybe from outside)
                tensors.setdefault(t.name, t)
        if k is None:                                        # a view
            parts = tuple(r for t in ins for r in under(t))
            for t in op.outputs:
                roots[t.name] = parts
            continue
        for t in ins:
            for r in under(t):
                readers.setdefault(r, set()).add(k)
                reads[k].add(r)
        for t in op.outputs:
            if t.role == TensorRole.ACTIVATION:
                producer[t.name] = k
                tensors.setdefault(t.name, t)
    kept: dict[str, Tensor] = {}
    for name, t in tensors.items():
        made = producer.get(name)
        used = readers.get(name, set())
        if made is None or not used or used != {made}:
            kept[name] = t
    out = []
    for k in range(len(kernels)):
        r = frozenset(n for n in reads[k] if n in kept and producer.get(n) != k)
        w = frozenset(n for n, p in producer.items() if p == k and n in kept)
        out.append(KernelFootprint(r, w))
    return Materialised(tuple(out), kept)
