"""A model's GPU kernels from its first three decoder layers: partition once, repeat the middle.

The GPU fusion rules may join ops across a layer boundary (a layer's residual add and the
next layer's norm run as one vector kernel), so the template is three layers: layer 0
(fed by the embedding), layer 1 (between two layers, like every middle layer) and layer 2
(feeding the final norm). :func:`repeated_kernels` partitions the model cut to three
layers (``build_model_graph(..., layers=3)``) and returns exactly the kernels
:func:`~rdusim.engine.gpu.fusion_rules.partition` gives for the whole model: layer 1's
kernels repeated, renamed, for layers 1 .. N-2, and layer 2's for layer N-1. It returns
``None`` (partition the whole graph instead) when the kernels do not come in that shape or
an op is not named by its layer (``L<i>.``).
"""

from __future__ import annotations

import re
from rdusim.config.arch_gpu import GpuArch
from rdusim.config.policy import FusionPolicy
from rdusim.engine.gpu.fusion_rules import partition
from rdusim.engine.gpu.kernels import Kernel
from rdusim.graph.opgraph import OpGraph

TEMPLATE_LAYERS = 3
_LAYER = re.compile(r"L(\d+)\.")


def _shift(name: str, by: int) -> str:
    """An op or kernel name of layer i as layer i + by names it (non-layer names unchanged)."""
    m = _LAYER.match(name)
    return f"L{int(m.group(1)) + by}.{name[m.end():]}" if m and by else name


def _moved(k: Kernel, by: int) -> Kernel:
    return Kernel(_shift(k.name, by), tuple(_shift(op, by) for op in k.ops), k.tag,
                  k.layer + by if k.layer >= 0 and by else k.layer, k.work)


class _Mover:
    """:func:`_moved` for one template kernel, its names split once: the copy for layer
    ``i + by`` is built by formatting, without matching every name again."""

    __slots__ = ("k", "parts")

    def __init__(self, k: Kernel):
        self.k = k
        self.parts = [self._split(n) for n in (k.name, *k.ops)]

    @staticmethod
    def _split(name: str) -> tuple[int, str] | str:
        m = _LAYER.match(name)
        return (int(m.group(1)), name[m.end():]) if m else name

    def at(self, by: int) -> Kernel:
        if not by:
            return self.k
        names = [p if isinstance(p, str) else f"L{p[0] + by}.{p[1]}" for p in self.parts]
        k = self.k
        return Kernel(names[0], tuple(names[1:]), k.tag, k.layer + by if k.layer >= 0 else k.layer, k.work)


def _named_by_layer(k: Kernel) -> bool:
    """Every op of a kernel either carries its layer's prefix or belongs to no layer."""
    for op in (k.name, *k.ops):
        m = _LAYER.match(op)
        if m is not None and int(m.group(1)) >= TEMPLATE_LAYERS:
            return False
    if k.layer >= 0 and not k.name.startswith(f"L{k.layer}."):
        return False
    return True


def repeated_kernels(graph: OpGraph, layers: int, policy: FusionPolicy, arch: GpuArch) -> tuple[Kernel, ...] | None:
    """The whole model's kernels (``layers`` decoder layers) from ``graph``, its first
    ``TEMPLATE_LAYERS`` layers; or None."""
    if layers < TEMPLATE_LAYERS:
        return None
    kernels = partition(graph, policy, arch)
    if not all(_named_by_layer(k) for k in kernels):
        return None
    order = [k.layer for k in kernels]
    runs = [x for i, x in enumerate(order) if i == 0 or order[i - 1] != x]
    core = runs[1:] if runs[:1] == [-1] else runs
    core = core[:-1] if core[-1:] == [-1] else core
    if core != list(range(TEMPLATE_LAYERS)):       # [-1]* [0]+ [1]+ [2]+ [-1]*
        return None
    first = order.index(0)
    mid = [k for k in kernels if k.layer == 1]
    last = [k for k in kernels if k.layer == 2]
    post = kernels[first + sum(1 for x in order if x >= 0):]
    shift = layers - TEMPLATE_LAYERS
    out = list(kernels[:first]) + [k for k in kernels if k.layer == 0]
    movers = [_Mover(k) for k in mid]
    for j in range(layers - 2):
        out += [m.at(j) for m in movers]
    out += [_moved(k, shift) for k in last]
    out += [_moved(k, shift) for k in post]
    return tuple(out)
