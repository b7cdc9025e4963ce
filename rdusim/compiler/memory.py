"""Where tensors live off chip: HBM first, DDR when a socket's HBM cannot hold them.

Activations crossing kernel boundaries always go to HBM. Tensors that enter the graph
from outside (weights, KV cache, optimizer state, constants) go to HBM while they fit
beside the activation workspace (the rule of :mod:`rdusim.memory`: a tier's usable bytes
are its capacity less its ``reserved_bytes``; the workspace is the largest set of
activations one kernel of the plan reads from and writes to HBM, :mod:`rdusim.workspace`:
what a fused kernel streams through its PMU stage buffers takes none); the rest spill to
DDR in the order optimizer state, then weights, then KV cache (least to most
bandwidth-critical). A spill larger than the DDR's usable
bytes raises :class:`rdusim.memory.OutOfMemory`.
"""

from __future__ import annotations

from rdusim.compiler.dataflow import Node
from rdusim.compiler.plan import Tier
from rdusim.compiler.target import CompileTarget
from rdusim.graph.tensor import TensorRole
from rdusim.memory_need import OutOfMemory, usable_bytes
from rdusim.workspace import materialised

_SPILL_ORDER = (TensorRole.OPTIMIZER_STATE, TensorRole.GRADIENT, TensorRole.WEIGHT, TensorRole.KV_CACHE,
                TensorRole.CONSTANT, TensorRole.INPUT)


def place_tensors(nodes: tuple[Node, ...], arch: CompileTarget, activation_bytes: float) -> dict[str, Tier]:
    """External tensor name -> tier, for one socket (the graph is one TP rank) beside
    ``activation_bytes`` of workspace (:func:`workspace_bytes` of its kernels)."""
    return assign_tiers(resident_sizes(nodes), arch, activation_bytes)


def workspace_bytes(ops, groups) -> float:
    """The activation workspace of a step of ``ops`` cut into ``groups`` (lists of nodes, one
    per kernel): the largest footprint one kernel materialises in HBM."""
    return materialised(ops, [[n.name for n in g] for g in groups]).workspace_bytes


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


def hbm_budget(arch: CompileTarget, activation_bytes: float = 0.0) -> float:
    """HBM bytes left for resident tensors beside ``activation_bytes`` of workspace."""
    return usable_bytes(arch.socket.hbm) - activation_bytes


def assign_tiers(sizes: dict[str, tuple[TensorRole, float]], arch: CompileTarget,
                 activation_bytes: float = 0.0) -> dict[str, Tier]:
    budget = hbm_budget(arch, activation_bytes)
    total = sum(b for _, b in sizes.values())
    tiers = {name: Tier.HBM for name in sizes}
    for role in _SPILL_ORDER:
        if total <= budget:
            break
        for name, (r, b) in sorted(sizes.items(), key=lambda kv: -kv[1][1]):
            if r == role and total > budget:
                tiers[name] = Tier.DDR
                total -= b
    spilled = sum(b for name, (_, b) in sizes.items() if tiers[name] == Tier.DDR)
    ddr = arch.socket.ddr
    if total > budget or spilled > usable_bytes(ddr):
        raise OutOfMemory(
            f"per socket: {sum(b for _, b in sizes.values()) / 1e9:.2f} GB of resident tensors and "
            f"{activation_bytes / 1e9:.2f} GB of activations exceed HBM {usable_bytes(arch.socket.hbm) / 1e9:.2f} GB "
            f"+ DDR {usable_bytes(ddr) / 1e9:.2f} GB usable (capacity less reserved_bytes)")
    return tiers
