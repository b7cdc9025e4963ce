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
from itertools import groupby

from rdusim.config.arch_gpu import GpuArch
from rdusim.config.policy import FusionPolicy
from rdusim.engine.gpu.fusion_rules import partition
from rdusim.engine.gpu.kernels import Kernel
from rdusim.graph.opgraph import OpGraph
from rdusim.graph.layer_runs import expand, runs

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
        # Kernel(names[0], tuple(names[1:]), k.tag, layer, k.work), built without the frozen
        # dataclass's __init__ (five object.__setattr__ calls; it has no __post_init__)
        copy = object.__new__(Kernel)
        copy.__dict__.update(name=names[0], ops=tuple(names[1:]), tag=k.tag,
                             layer=k.layer + by if k.layer >= 0 else k.layer, work=k.work)
        return copy


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
    """The whole model's kernels (``layers`` decoder layers) of an inference step from
    ``graph``, its first ``TEMPLATE_LAYERS`` layers, visited once upwards; or None (a
    training step's layers come back: :func:`repeated_step_kernels`)."""
    if layers < TEMPLATE_LAYERS:
        return None
    kernels = partition(graph, policy, arch)
    visits = [layer for layer, _ in groupby(k.layer for k in kernels) if layer >= 0]
    if visits != list(range(TEMPLATE_LAYERS)):       # [-1]* [0]+ [1]+ [2]+ [-1]*
        return None
    return _repeated(kernels, layers)


def _layers_named(k: Kernel) -> set[int]:
    """The layers its name and its ops' names carry."""
    return {int(m.group(1)) for m in map(_LAYER.match, (k.name, *k.ops)) if m is not None}


def repeated_step_kernels(graph: OpGraph, layers: int, policy: FusionPolicy,
                          arch: GpuArch) -> tuple[Kernel, ...] | None:
    """The whole model's kernels from ``graph``, the model cut to its first
    ``TEMPLATE_LAYERS`` layers, for a step that visits its layers in several runs (a
    training step: forward up, backward and optimizer down; :mod:`rdusim.graph.layer_runs`);
    or None."""
    return _repeated(partition(graph, policy, arch), layers)


def _repeated(kernels: tuple[Kernel, ...], layers: int) -> tuple[Kernel, ...] | None:
    """The whole model's kernels from the template's (:mod:`rdusim.graph.layer_runs`), or
    None. A kernel of template layer ``l``'s run copied to layer ``j`` has every layer name
    moved by ``j - l`` (a kernel may hold a neighbouring layer's ops: a residual add joined
    to the next norm); a kernel outside the layers is moved with the last layer when it
    holds the template's last layer's ops, kept when it holds only the first's."""
    if not all(_named_by_layer(k) for k in kernels):
        return None
    layout = runs([k.layer for k in kernels])
    targets = expand([layer for layer, _ in layout], layers)
    if targets is None:
        return None
    last = TEMPLATE_LAYERS - 1
    out: list[Kernel] = []
    at = 0
    for (layer, count), dsts in zip(layout, targets):
        part = kernels[at:at + count]
        at += count
        if layer < 0:
            named = set().union(*map(_layers_named, part))
            if named - {0, last} or named >= {0, last}:
                return None          # a non-layer kernel between layers: where it goes is not known here
            out += [_moved(k, layers - TEMPLATE_LAYERS if last in named else 0) for k in part]
            continue
        movers = [_Mover(k) for k in part]
        for j in dsts:
            out += [m.at(j - layer) for m in movers]
    return tuple(out)
