"""A model's plan from its first two decoder layers: compile once, repeat a layer's kernels.

A model's decoder layers are identical apart from their names (``L<i>.``) and what feeds
the first one, so compiling the whole model places layers 0 and 1 and reuses layer 1's
kernels, renamed, for the others. Building and compiling a 30-80 layer graph only to find
that out is most of the cost of a model step. :func:`compile_repeated` takes the graph of
the model cut to two layers (``build_model_graph(..., layers=2)``: embedding, layers 0
and 1, final norm and head; layer 0 is kept apart because its input may differ, as
LLaVA's merged image and text tokens do) and returns exactly the plan
:func:`~rdusim.compiler.compile.compile_plan` gives for the whole model, kernel for kernel
and name for name.

It returns ``None`` (compile the whole graph instead) whenever the shortcut could differ:
the layers' ops or off-chip tensors are not named per layer, a layer's ops are not
contiguous, or the whole model's tensors would not all fit in HBM (spilling to DDR
depends on every tensor of the model, so it is left to the full compile).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from rdusim.compiler.compile import kernel_name, place_groups
from rdusim.compiler.dataflow import Node, dataflow_nodes
from rdusim.compiler.fusion import partition
from rdusim.compiler.memory import hbm_budget, resident_sizes, workspace_bytes
from rdusim.compiler.placement import DEFAULT_BUFFERING, Buffering
from rdusim.compiler.plan import Kernel, Plan, Tier
from rdusim.compiler.target import CompileTarget
from rdusim.config.arch_rdu import RduArch
from rdusim.config.policy import FusionPolicy
from rdusim.graph.opgraph import OpGraph

TEMPLATE_LAYERS = 2      # layers of the graph compile_repeated takes; the last one is repeated
_MARGIN = 1e-9           # the fit test leaves this relative margin for rounding of byte sums


def prefix(layer: int) -> str:
    return f"L{layer}."


@dataclass(frozen=True)
class _Template:
    nodes: tuple[Node, ...]
    consumers: dict
    spans: tuple[tuple[int, int], ...]     # [first, last + 1) node indices of each layer

    @property
    def rep(self) -> int:
        """The repeated layer (the last one of the template)."""
        return len(self.spans) - 1

    def layer_nodes(self, layer: int) -> tuple[Node, ...]:
        a, b = self.spans[layer]
        return self.nodes[a:b]


def _template(graph: OpGraph, policy: FusionPolicy) -> _Template | None:
    nodes, consumers = dataflow_nodes(graph, policy)
    spans = []
    for layer in range(TEMPLATE_LAYERS):
        at = [i for i, n in enumerate(nodes) if n.layer == layer]
        if not at or at[-1] - at[0] + 1 != len(at):
            return None
        if not all(nodes[i].name.startswith(prefix(layer)) for i in at):
            return None
        spans.append((at[0], at[-1] + 1))
    if any(n.layer not in range(-1, TEMPLATE_LAYERS) for n in nodes):
        return None
    return _Template(nodes, consumers, tuple(spans))


def _repeated_tiers(t: _Template, layers: int, arch: CompileTarget, workspace: float) -> dict[str, Tier] | None:
    """The whole model's tensor placement (everything in HBM beside ``workspace`` bytes of
    activations: the template's kernels are the model's, so is their workspace), or None
    if that is not sure."""
    sizes = resident_sizes(t.nodes)
    owner: dict[str, int] = {}                 # tensor -> the one layer touching it (-1: none)
    prefixes = tuple(prefix(j) for j in range(TEMPLATE_LAYERS))
    for layer in range(-1, TEMPLATE_LAYERS):
        part = [n for n in t.nodes if n.layer == layer]
        for name in resident_sizes(tuple(part)):
            if name in owner:
                return None      # a tensor shared between layers: its count is not known here
            owner[name] = layer
            if (layer >= 0) != name.startswith(prefixes):
                return None
            if layer >= 0 and not name.startswith(prefixes[layer]):
                return None
    r = t.rep
    copies = {-1: 1, **{j: 1 for j in range(r)}, r: layers - r}
    total = sum(b * copies[owner[name]] for name, (_, b) in sizes.items())
    if total > hbm_budget(arch, workspace) * (1 - _MARGIN):
        return None
    names = list(sizes)
    rep = [n for n in names if owner[n] == r]
    if not rep:
        return dict.fromkeys(names, Tier.HBM)
    start = names.index(rep[0])
    if names[start:start + len(rep)] != rep:
        return None
    cut = len(prefix(r))
    rest = [n[cut:] for n in rep]
    full = names[:start] + [head + n for head in map(prefix, range(r, layers)) for n in rest] \
        + names[start + len(rep):]     # layer r's tensors as each layer j >= r names them
    return dict.fromkeys(full, Tier.HBM)


def compile_repeated(graph: OpGraph, layers: int, arch: RduArch | CompileTarget, policy: FusionPolicy, *,
                     tiles: int, buffering: Buffering = DEFAULT_BUFFERING) -> Plan | None:
    """The plan of the model with ``layers`` decoder layers whose first ``TEMPLATE_LAYERS``
    are ``graph`` (a model graph built with ``layers=TEMPLATE_LAYERS``), identical to
    compiling the whole model's graph; or None."""
    if tiles < 1:
        raise ValueError(f"tiles must be >= 1, got {tiles}")
    if layers < TEMPLATE_LAYERS:
        return None
    arch = CompileTarget.of(arch)
    t = _template(graph, policy)
    if t is None:
        return None
    tiers = {name: Tier.HBM for name in resident_sizes(t.nodes)}
    groups = partition(t.nodes, t.consumers, tiers, arch, policy, tiles, buffering)
    full_tiers = _repeated_tiers(t, layers, arch, workspace_bytes(graph.ops, groups))
    if full_tiers is None:
        return None
    first = next(i for i, g in enumerate(groups) if g[0].layer == t.rep)
    count = sum(1 for g in groups if g[0].layer == t.rep)
    kernels = place_groups(groups, t.consumers, tiers, arch, tiles, buffering)
    out: list[Kernel] = kernels[:first]
    cut = len(prefix(t.rep))
    layer = [(k, tuple(op[cut:] for op in k.ops)) for k in kernels[first:first + count]]
    for j in range(t.rep, layers):
        head = prefix(j)
        for g, (k, rest) in enumerate(layer):
            ops = tuple([head + r for r in rest])      # layer t.rep's op names as layer j's
            out.append(k.renamed(kernel_name(first + (j - t.rep) * count + g, ops), ops, layer=j))
    shift = (layers - TEMPLATE_LAYERS) * count
    for i, k in enumerate(kernels[first + count:], start=first + count):
        out.append(k.renamed(kernel_name(i + shift, k.ops), k.ops))
    return Plan(graph.name, policy, tiles, tuple(out),
                MappingProxyType({k: v.value for k, v in full_tiers.items()}))


def repeated_param_bytes(graph: OpGraph, layers: int) -> float | None:
    """The whole model's weight bytes on the rank (``OpGraph.param_bytes`` of its full graph)
    from its ``TEMPLATE_LAYERS``-layer graph, or None when their byte counts are not whole
    (sums would round differently). Weights named ``L<last template layer>.`` repeat."""
    if layers < TEMPLATE_LAYERS:
        return None
    rep = prefix(TEMPLATE_LAYERS - 1)
    total = 0
    for name, w in graph.weights.items():
        b = w.nbytes
        if b != int(b):
            return None
        total += int(b) * (layers - TEMPLATE_LAYERS + 1 if name.startswith(rep) else 1)
    return float(total)
