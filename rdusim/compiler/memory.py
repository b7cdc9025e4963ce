"""Where tensors live off chip: HBM first, DDR when a socket's HBM cannot hold them.

Activations crossing kernel boundaries always go to HBM. Tensors that enter the graph
from outside (weights, KV cache, optimizer state, constants) go to HBM while they fit
(with ``HBM_HEADROOM`` left for activations); the rest spill to DDR in the order
optimizer state, then weights, then KV cache (least to most bandwidth-critical).
"""

from __future__ import annotations

from rdusim.compiler.dataflow import Node
from rdusim.compiler.plan import Tier
from rdusim.compiler.target import CompileTarget
from rdusim.graph.tensor import TensorRole

HBM_HEADROOM = 0.9   # fraction of HBM capacity given to resident tensors
_SPILL_ORDER = (TensorRole.OPTIMIZER_STATE, TensorRole.GRADIENT, TensorRole.WEIGHT, TensorRole.KV_CACHE,
                TensorRole.CONSTANT, TensorRole.INPUT)


def place_tensors(nodes: tuple[Node, ...], arch: CompileTarget) -> dict[str, Tier]:
    """External tensor name -> tier, for one socket (the graph is one TP rank)."""
    return assign_tiers(resident_sizes(nodes), arch)


def resident_sizes(nodes: tuple[Node, ...]) -> dict[str, tuple[TensorRole, float]]:
    """Tensors that live off chip across steps, in order of first use: name -> (role, bytes)."""
    sizes: dict[str, tuple[TensorRole, float]] = {}
    for n in nodes:
        for o in n.operands:
            if o.producer is None:
                sizes.setdefault(o.tensor.name, (o.tensor.role, o.tensor.nbytes))
        for t in n.op.outputs:
            if t.role in (TensorRole.KV_CACHE, TensorRole.OPTIMIZER_STATE, TensorRole.WEIGHT):
                sizes.setdefault(t.name, (t.role, t.nbytes))
    return sizes


def hbm_budget(arch: CompileTarget) -> float:
    return arch.socket.hbm.capacity_bytes * HBM_HEADROOM


def assign_tiers(sizes: dict[str, tuple[TensorRole, float]], arch: CompileTarget) -> dict[str, Tier]:
    budget = hbm_budget(arch)
    total = sum(b for _, b in sizes.values())
    tiers = {name: Tier.HBM for name in sizes}
    for role in _SPILL_ORDER:
        if total <= budget:
            break
        for name, (r, b) in sorted(sizes.items(), key=lambda kv: -kv[1][1]):
            if r == role and total > budget:
                tiers[name] = Tier.DDR
                total -= b
    return tiers
