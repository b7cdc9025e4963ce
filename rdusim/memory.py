"""Memory on the simulated machine: one rule for every run (model, fusion, CoE, sweep).

The rule. A tier holds at most ``usable_bytes`` = ``capacity_bytes - reserved_bytes``
(the reserve is an arch parameter of every tier: OS, runtime, program binaries, pinned
staging buffers). One device (a GPU, or an RDU socket) of a model sharded over ``tp``
devices needs

    weights of its rank + KV cache of its rank at the final context + activation workspace

and fits when that is at most its HBM's usable bytes. On an RDU socket the weights and
KV cache that HBM cannot hold spill to the socket's DDR (what the compiler does,
:mod:`rdusim.compiler.memory`); the activation workspace always stays in HBM; the run
fits when the spill is at most the DDR's usable bytes. A GPU has no spill tier.

- KV cache: the model's ``kv_cache_bytes`` (its ``kv_cache_bytes_per_token`` times the
  tokens it keeps; a sliding window keeps at most its window) for each sequence, sharded
  over TP ranks by KV heads (``max(1, kv_heads // tp)`` of ``kv_heads`` per rank: ranks
  beyond the KV heads hold replicas).
- Activation workspace: the largest set of activations one kernel of the step reads from
  and writes to HBM, with the step cut into kernels exactly as the machine's engine cuts it
  for its timing (same partition, same fusion policy; :mod:`rdusim.workspace`): what a kernel
  produces and consumes itself stays on chip (a GPU FlashAttention kernel keeps no score
  matrix, a fused RDU kernel streams its intermediates through PMU stage buffers), what
  crosses a kernel boundary is in HBM (eager attention materialises its scores, an unfused
  RDU kernel writes every intermediate). Model runs take it from the prefill step over the
  prompt (the step with the most live activations), on the model's one-layer graph of the
  rank; a lower bound on what the step needs live (weights and KV are counted apart).

:func:`device_memory` is the entry point for model-shaped runs; :func:`tier_split` is the
rule itself, which the compiler's placement and the CoE capacity arithmetic also use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, Optional

from rdusim.config.arch import ArchSpec
from rdusim.config.arch_common import MemoryTier
from rdusim.config.execution import ExecutionConfig
from rdusim.config.model import ModelConfig
from rdusim.config.policy import FusionPolicy
from rdusim.graph.tensor import TensorRole
from rdusim.workspace import Materialised, materialised


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


def repeated_graph_memory(arch: ArchSpec, head, layers: int, repeat_layer: int, fusion: FusionPolicy,
                          execution: ExecutionConfig = ExecutionConfig()) -> MemoryNeed | None:
    """:func:`graph_memory` of a model's whole graph from ``head``, its first layers, when
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
    act = step_materialised(arch, head, fusion, execution).workspace_bytes   # the repeated layer's kernels are the head's
    tiers = tier_split(arch, {k: v for k, v in totals.items() if v > 0}, act)
    return MemoryNeed(arch.DEVICE, totals[TensorRole.WEIGHT.value],
                      totals[TensorRole.KV_CACHE.value], act, tiers)


def kernel_ops(arch: ArchSpec, graph, fusion: FusionPolicy,
               execution: ExecutionConfig = ExecutionConfig()) -> tuple[tuple[str, ...], ...]:
    """The op names of each kernel ``arch``'s engine runs ``graph`` as, in launch order: the
    partition its timing uses (its family answers: rdusim.engine.family.Family.kernel_ops)."""
    from rdusim.engine.families import family
    return family(arch).kernel_ops(arch, graph, fusion, execution)


def step_materialised(arch: ArchSpec, graph, fusion: FusionPolicy,
                      execution: ExecutionConfig = ExecutionConfig()) -> Materialised:
    """The activations ``graph``'s step materialises in HBM on ``arch`` under ``fusion``."""
    return materialised(graph.ops, kernel_ops(arch, graph, fusion, execution))


def activation_workspace_bytes(dep, batch: int, prompt_tokens: int) -> float:
    """Workspace of the prefill step (the step with the most live activations) of deployment
    ``dep`` (its machine, model, TP degree, fusion policy and execution settings), from the
    model's one-layer graph; kept in the run's cache."""
    from rdusim.cache import active_cache
    from rdusim.graph.model_graph import build_model_graph
    from rdusim.graph.phase import Phase

    def compute() -> float:
        graph = build_model_graph(dep.model, Phase.PREFILL, batch, prompt_tokens, tp=dep.tp, layers=1)
        return step_materialised(dep.arch, graph, dep.fusion, dep.execution).workspace_bytes

    key = (dep.arch, dep.model, dep.tp, dep.fusion, dep.execution, batch, prompt_tokens)
    return active_cache().get_or_compute("workspace", key, compute)


def weight_bytes_per_rank(cfg: ModelConfig, tp: int) -> float:
    """Parameter bytes one TP rank holds: from the model's first layers with the last one
    repeated when that is exact (no 30-80 layer graph), else from the whole graph."""
    from rdusim.compiler.repeat import TEMPLATE_LAYERS, repeated_param_bytes
    from rdusim.graph.model_graph import build_model_graph
    from rdusim.graph.phase import Phase

    if cfg.num_hidden_layers > TEMPLATE_LAYERS:
        head = build_model_graph(cfg, Phase.DECODE, 1, 1, tp=tp, layers=TEMPLATE_LAYERS)
        whole = repeated_param_bytes(head, cfg.num_hidden_layers)
        if whole is not None:
            return float(whole)
    return float(build_model_graph(cfg, Phase.DECODE, 1, 1, tp=tp).param_bytes)


def device_memory(dep, batch: int, context_tokens: int, prompt_tokens: Optional[int] = None) -> MemoryNeed:
    """Per-device memory of serving deployment ``dep`` (a :class:`rdusim.config.deployment.Deployment`:
    its model over ``dep.tp`` devices of ``dep.arch``) to ``batch`` sequences whose context
    reaches ``context_tokens`` (prompt + output); the activation workspace is the prefill's
    over ``prompt_tokens`` (default: the whole context) under the deployment's fusion policy."""
    arch, cfg, tp = dep.arch, dep.model, dep.tp
    weights = weight_bytes_per_rank(cfg, tp)
    kv = kv_bytes_per_rank(cfg, tp, batch, context_tokens)
    act = activation_workspace_bytes(dep, batch, prompt_tokens or context_tokens)
    # spill order as the compiler's: weights before the (more bandwidth-critical) KV cache
    tiers = tier_split(arch, {"weights": weights, "kv_cache": kv}, act)
    return MemoryNeed(arch.DEVICE, weights, kv, act, tiers)


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


def graph_memory(arch: ArchSpec, graph, fusion: FusionPolicy,
                 execution: ExecutionConfig = ExecutionConfig()) -> MemoryNeed:
    """Per-device memory of one step's graph (one TP rank) run under ``fusion``: the tensors
    that live across steps (weights, KV cache, gradients, optimizer state, constants) beside
    the step's activation workspace, placed by :func:`tier_split` in the compiler's spill order."""
    seen = _lasting_tensors(graph.ops)
    by_role = {r.value: float(sum(b for role, b in seen.values() if role == r)) for r in _LASTING}
    act = step_materialised(arch, graph, fusion, execution).workspace_bytes
    tiers = tier_split(arch, {k: v for k, v in by_role.items() if v > 0}, act)
    weights = by_role[TensorRole.WEIGHT.value]
    return MemoryNeed(arch.DEVICE, weights,
                      by_role[TensorRole.KV_CACHE.value], act, tiers)
