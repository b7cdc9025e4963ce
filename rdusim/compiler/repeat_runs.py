"""A model's plan from its first, second and last decoder layers, when each layer's ops come
back in several runs (a training step: forward, backward in reverse order, optimizer).

:mod:`rdusim.compiler.repeat` compiles an inference step from two layers, each of them one
contiguous run of ops. A training step visits every layer three times: forward (layers
ascending), backward (descending) and the AdamW update (descending), with the loss and the
head between them. Its first and last layers differ from the others there (the first reads
the embedding, the last's backward starts from the head), so the template here is the
model cut to three layers: layer 0 stands for layer 0, layer 2 for the last layer, and
layer 1 for every layer between. The template's ops fall into runs of one layer each,
which :mod:`rdusim.graph.layer_runs` expands into the whole model's runs. A kernel never
spans two runs (unfused: one op each; fused: :func:`rdusim.compiler.fusion.partition`
cuts at every change of layer), so the whole model's kernels are the template's kernels
of each run, renamed, in that order; the off-chip tensors of each layer are renamed the
same way.

The result is exactly :func:`~rdusim.compiler.compile.compile_plan` of the whole model's
graph (tests/test_compiler_repeat_runs.py compares them, kernel for kernel, name for
name, placement order included, for every shipped model); it is ``None`` (compile the
whole graph) when the structure above does not hold, an op or an off-chip tensor of a
layer is not named ``L<i>.``, a tensor is touched by two layers, or the model's tensors
would not all fit in HBM.
"""

from __future__ import annotations

from types import MappingProxyType

from rdusim.compiler.compile import kernel_name, place_groups
from rdusim.compiler.dataflow import dataflow_nodes
from rdusim.compiler.fusion import partition
from rdusim.compiler.memory import hbm_budget, resident_sizes, workspace_bytes
from rdusim.compiler.placement import DEFAULT_BUFFERING, Buffering
from rdusim.compiler.plan import Kernel, Plan, Tier
from rdusim.compiler.repeat import _MARGIN, prefix
from rdusim.compiler.target import CompileTarget
from rdusim.config.arch_rdu import RduArch
from rdusim.config.policy import FusionPolicy
from rdusim.graph.layer_runs import MID, TEMPLATE_LAYERS, expand, runs
from rdusim.graph.opgraph import OpGraph


def _rename(name: str, src: int, dst: int) -> str:
    return name if src < 0 or src == dst else prefix(dst) + name[len(prefix(src)):]


def _owners(nodes, names: dict) -> dict[str, int] | None:
    """The one layer (-1: none) touching each off-chip tensor, checked against its name."""
    owner: dict[str, int] = {}
    for layer in range(-1, TEMPLATE_LAYERS):
        for name in resident_sizes(tuple(n for n in nodes if n.layer == layer)):
            if name in owner:
                return None          # touched by two layers: how many copies is not known here
            named = next((j for j in range(TEMPLATE_LAYERS) if name.startswith(prefix(j))), -1)
            if named != layer:
                return None
            owner[name] = layer
    return owner if set(owner) == set(names) else None


def _full_placement(nodes, layers: int, arch: CompileTarget, workspace: float) -> dict[str, Tier] | None:
    """The whole model's tensor placement (everything in HBM beside ``workspace`` bytes of
    activations, in first-use order), or None."""
    sizes = resident_sizes(nodes)
    owner = _owners(nodes, sizes)
    if owner is None:
        return None
    copies = {**dict.fromkeys(range(-1, TEMPLATE_LAYERS), 1), MID: layers - TEMPLATE_LAYERS + 1}
    total = sum(b * copies[owner[name]] for name, (_, b) in sizes.items())
    if total > hbm_budget(arch, workspace) * (1 - _MARGIN):
        return None
    names = list(sizes)
    layout = runs([owner[n] for n in names])
    targets = expand([layer for layer, _ in layout], layers)
    if targets is None:
        return None
    full: list[str] = []
    at = 0
    for (layer, count), dsts in zip(layout, targets):
        part = names[at:at + count]
        at += count
        full += [_rename(n, layer, j) for j in dsts for n in part]
    return dict.fromkeys(full, Tier.HBM)


def compile_repeated_runs(graph: OpGraph, layers: int, arch: RduArch | CompileTarget, policy: FusionPolicy, *,
                          tiles: int, buffering: Buffering = DEFAULT_BUFFERING) -> Plan | None:
    """The plan of the model with ``layers`` decoder layers whose graph cut to
    ``TEMPLATE_LAYERS`` layers is ``graph``, identical to compiling the whole model's
    graph; or None."""
    if tiles < 1:
        raise ValueError(f"tiles must be >= 1, got {tiles}")
    arch = CompileTarget.of(arch)
    nodes, consumers = dataflow_nodes(graph, policy)
    if any(n.layer not in range(-1, TEMPLATE_LAYERS) or (n.layer >= 0 and not n.name.startswith(prefix(n.layer)))
           for n in nodes):
        return None
    layout = runs([n.layer for n in nodes])
    targets = expand([layer for layer, _ in layout], layers)
    if targets is None:
        return None
    tiers = {name: Tier.HBM for name in resident_sizes(nodes)}
    groups = partition(nodes, consumers, tiers, arch, policy, tiles, buffering)
    full_tiers = _full_placement(nodes, layers, arch, workspace_bytes(graph.ops, groups))
    if full_tiers is None:
        return None
    kernels = place_groups(groups, consumers, tiers, arch, tiles, buffering)
    by_run: list[list[Kernel]] = [[] for _ in layout]
    run_of = [r for r, (_, count) in enumerate(layout) for _ in range(count)]
    at = 0
    for group, kernel in zip(groups, kernels):
        r = run_of[at]
        if run_of[at + len(group) - 1] != r:
            return None              # a kernel across two runs (partition never makes one)
        by_run[r].append(kernel)
        at += len(group)
    out: list[Kernel] = []
    for (layer, _), dsts, ks in zip(layout, targets, by_run):
        for j in dsts:
            for k in ks:
                ops = k.ops if layer < 0 or j == layer else tuple(_rename(op, layer, j) for op in k.ops)
                out.append(k.renamed(kernel_name(len(out), ops), ops, layer=k.layer if layer < 0 else j))
    return Plan(graph.name, policy, tiles, tuple(out),
                MappingProxyType({k: v.value for k, v in full_tiers.items()}))
