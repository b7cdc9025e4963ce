"""What one device needs in memory and where it goes: the tiers' rule (usable bytes,
spill order), the need of a step's graph given its kernel partition, and the KV arithmetic.
The partition comes from the caller (the engine that cuts the step; :mod:`rdusim.memory`
asks the machine's family), so this module sits below the engines and the compiler, which
use it too. :mod:`rdusim.memory` describes the rule."""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, Optional

from rdusim.config.arch import ArchSpec
from rdusim.config.arch_common import MemoryTier
from rdusim.config.model import ModelConfig
from rdusim.graph.tensor import TensorRole
from rdusim.workspace import materialised

Kernels = tuple[tuple[str, ...], ...]     # the op names of each kernel of a step, in launch order


class OutOfMemory(Exception):
    """The simulated machine cannot hold what a run needs (a result, never a crash: studies
    catch it and report ``.oom = 1`` with :attr:`reason`)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TierUse:
    """What one device places on one tier, against what the tier lets it use."""

    tier: str                        # "hbm" | "ddr"
    capacity_bytes: float
    reserved_bytes: float
    parts: Mapping[str, float]       # weights / kv_cache / activations / spill -> bytes

    @property
    def used_bytes(self) -> float:
        return float(sum(self.parts.values()))

    @property
    def usable_bytes(self) -> float:
        return self.capacity_bytes - self.reserved_bytes

    @property
    def fits(self) -> bool:
        return self.used_bytes <= self.usable_bytes

    def describe(self) -> str:
        parts = " + ".join(f"{k} {v / 1e9:.2f}" for k, v in self.parts.items() if v > 0) or "nothing"
        return (f"{self.tier.upper()} needs {self.used_bytes / 1e9:.2f} GB ({parts}) but holds "
                f"{self.usable_bytes / 1e9:.2f} GB usable ({self.capacity_bytes / 1e9:.2f} capacity - "
                f"{self.reserved_bytes / 1e9:.2f} reserved)")


@dataclass(frozen=True)
class MemoryNeed:
    """Per-device memory of one run and whether the device holds it."""

    device: str                      # what one device is called (the machine's DEVICE: "socket", "GPU", "chip")
    weights_bytes: float
    kv_bytes: float
    activation_bytes: float
    tiers: tuple[TierUse, ...]

    @property
    def fits(self) -> bool:
        return all(t.fits for t in self.tiers)

    @property
    def reason(self) -> Optional[str]:
        """None when the run fits; else which tier overflows, by how much and why."""
        bad = [t for t in self.tiers if not t.fits]
        if not bad:
            return None
        return f"per {self.device}: " + "; ".join(t.describe() for t in bad)

    def values(self) -> dict[str, float]:
        """Per-device memory by metric name below a result row (``memory.weights_bytes``, ...)."""
        out = {"memory.weights_bytes": self.weights_bytes, "memory.kv_bytes": self.kv_bytes,
               "memory.activation_bytes": self.activation_bytes}
        for t in self.tiers:
            out[f"memory.{t.tier}_used_bytes"] = t.used_bytes
            out[f"memory.{t.tier}_usable_bytes"] = t.usable_bytes
        return out


def usable_bytes(tier: MemoryTier) -> float:
    """The one rule for a tier: capacity less its reserve."""
    return tier.usable_bytes


def device_tiers(arch: ArchSpec) -> tuple[MemoryTier, Optional[MemoryTier]]:
    """(HBM, spill tier or None) of one device of ``arch`` (the machine interface)."""
    return arch.device_hbm, arch.spill_tier


def tier_split(arch: ArchSpec, resident_bytes: Mapping[str, float], activation_bytes: float) -> tuple[TierUse, ...]:
    """Place one device's resident tensors (name -> bytes, in spill order: first spilled
    first) beside ``activation_bytes`` of workspace. HBM keeps the workspace and the
    residents while they fit; on an RDU the overflow goes to DDR, on a GPU it stays on
    HBM (and does not fit)."""
    hbm, spill = device_tiers(arch)
    room = usable_bytes(hbm) - activation_bytes
    total = float(sum(resident_bytes.values()))
    in_hbm = dict(resident_bytes)
    spilled = 0.0
    if spill is not None and total > room:
        over = total - max(room, 0.0)
        for name, b in resident_bytes.items():
            if over <= 0:
                break
            moved = min(b, over)
            in_hbm[name] = b - moved
            spilled += moved
            over -= moved
    tiers = [TierUse("hbm", hbm.capacity_bytes, hbm.reserved_bytes,
                     MappingProxyType({**in_hbm, "activations": activation_bytes}))]
    if spill is not None:
        tiers.append(TierUse("ddr", spill.capacity_bytes, spill.reserved_bytes,
                             MappingProxyType({"spill": spilled})))
    return tuple(tiers)


def kv_bytes_per_rank(cfg: ModelConfig, tp: int, batch: int, tokens: int) -> float:
    """KV cache of ``batch`` sequences holding ``tokens`` tokens, on one of ``tp`` ranks
    (the one KV formula, ``ModelConfig.kv_cache_bytes_per_rank``)."""
    return float(batch * cfg.kv_cache_bytes_per_rank(tokens, tp))


def slots(free_bytes: float, item_bytes: float) -> int:
    """Whole items of ``item_bytes`` that fit in ``free_bytes`` (0 when nothing is free)."""
    return max(0, math.floor(free_bytes / item_bytes)) if item_bytes > 0 else 0


# tensors that live across steps, in the compiler's spill order
_LASTING = (TensorRole.OPTIMIZER_STATE, TensorRole.GRADIENT, TensorRole.WEIGHT, TensorRole.KV_CACHE,
            TensorRole.CONSTANT)


def _lasting_tensors(ops) -> dict[str, tuple[TensorRole, float]]:
    """Each tensor of ``ops`` that lives across steps: its role and bytes, by name."""
    seen: dict[str, tuple[TensorRole, float]] = {}
    for op in ops:
        for t in (*op.inputs, *op.outputs):
            if t.role in _LASTING:
                seen.setdefault(t.name, (t.role, t.nbytes))
    return seen


def repeated_graph_need(arch: ArchSpec, head, layers: int, repeat_layer: int, kernels: Kernels) -> MemoryNeed | None:
    """:func:`graph_need` of a model's whole graph from ``head``, its first layers, when
    layer ``repeat_layer`` of ``head`` stands for every layer the head leaves out (the
    tensors named ``L<repeat_layer>.`` count ``layers - len(head layers) + 1`` times).
    None when a byte count is not whole (the sums would round differently from the whole
    graph's) or the head already is the whole model."""
    seen = _lasting_tensors(head.ops)
    template = {int(n[1:n.index(".")]) for n in seen if n.startswith("L") and "." in n and n[1:n.index(".")].isdigit()}
    if not template or max(template) + 1 >= layers or repeat_layer not in template:
        return None
    times = layers - (max(template) + 1) + 1
    rep = f"L{repeat_layer}."
    by_role = {r.value: 0 for r in _LASTING}
    for name, (role, b) in seen.items():
        if b != int(b):
            return None
        by_role[role.value] += int(b) * (times if name.startswith(rep) else 1)
    totals = {k: float(v) for k, v in by_role.items()}
    act = materialised(head.ops, kernels).workspace_bytes   # ``kernels``: the head's (the repeated layer's are among them)
    tiers = tier_split(arch, {k: v for k, v in totals.items() if v > 0}, act)
    return MemoryNeed(arch.DEVICE, totals[TensorRole.WEIGHT.value],
                      totals[TensorRole.KV_CACHE.value], act, tiers)


def graph_need(arch: ArchSpec, graph, kernels: Kernels) -> MemoryNeed:
    """Per-device memory of one step's graph (one TP rank) run as ``kernels``: the tensors
    that live across steps (weights, KV cache, gradients, optimizer state, constants) beside
    the step's activation workspace, placed by :func:`tier_split` in the compiler's spill order."""
    seen = _lasting_tensors(graph.ops)
    by_role = {r.value: float(sum(b for role, b in seen.values() if role == r)) for r in _LASTING}
    act = materialised(graph.ops, kernels).workspace_bytes
    tiers = tier_split(arch, {k: v for k, v in by_role.items() if v > 0}, act)
    weights = by_role[TensorRole.WEIGHT.value]
    return MemoryNeed(arch.DEVICE, weights,
                      by_role[TensorRole.KV_CACHE.value], act, tiers)
