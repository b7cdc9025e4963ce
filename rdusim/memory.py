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
rule itself, which the compiler's placement and the CoE capacity arithmetic also use. The
rule and the need of a graph given its kernels live in :mod:`rdusim.memory_need` (below the
engines and the compiler); this module adds the machine's own kernel cut (its family's) and
the model-shaped entry points.
"""

from __future__ import annotations

from typing import Optional

from rdusim.cache import active_cache
from rdusim.compiler.repeat import TEMPLATE_LAYERS, repeated_param_bytes
from rdusim.config.arch import ArchSpec
from rdusim.config.execution import ExecutionConfig
from rdusim.config.model import ModelConfig
from rdusim.config.policy import FusionPolicy
from rdusim.engine.families import family
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase
from rdusim.memory_need import (MemoryNeed, OutOfMemory, TierUse, device_tiers, graph_need,  # noqa: F401  (re-exported)
                                kv_bytes_per_rank, repeated_graph_need, slots, tier_split, usable_bytes)
from rdusim.workspace import Materialised, materialised


def repeated_graph_memory(arch: ArchSpec, head, layers: int, repeat_layer: int, fusion: FusionPolicy,
                          execution: ExecutionConfig = ExecutionConfig()) -> MemoryNeed | None:
    """:func:`graph_memory` of a model's whole graph from ``head``, its first layers
    (:func:`rdusim.memory_need.repeated_graph_need` with the machine's kernel cut)."""
    return repeated_graph_need(arch, head, layers, repeat_layer, kernel_ops(arch, head, fusion, execution))


def graph_memory(arch: ArchSpec, graph, fusion: FusionPolicy,
                 execution: ExecutionConfig = ExecutionConfig()) -> MemoryNeed:
    """Per-device memory of one step's graph (one TP rank) run under ``fusion``
    (:func:`rdusim.memory_need.graph_need` with the machine's kernel cut)."""
    return graph_need(arch, graph, kernel_ops(arch, graph, fusion, execution))


def kernel_ops(arch: ArchSpec, graph, fusion: FusionPolicy,
               execution: ExecutionConfig = ExecutionConfig()) -> tuple[tuple[str, ...], ...]:
    """The op names of each kernel ``arch``'s engine runs ``graph`` as, in launch order: the
    partition its timing uses (its family answers: rdusim.engine.family.Family.kernel_ops)."""
    return family(arch).kernel_ops(arch, graph, fusion, execution)


def step_materialised(arch: ArchSpec, graph, fusion: FusionPolicy,
                      execution: ExecutionConfig = ExecutionConfig()) -> Materialised:
    """The activations ``graph``'s step materialises in HBM on ``arch`` under ``fusion``."""
    return materialised(graph.ops, kernel_ops(arch, graph, fusion, execution))


def activation_workspace_bytes(dep, batch: int, prompt_tokens: int) -> float:
    """Workspace of the prefill step (the step with the most live activations) of deployment
    ``dep`` (its machine, model, TP degree, fusion policy and execution settings), from the
    model's one-layer graph; kept in the run's cache."""
    def compute() -> float:
        graph = build_model_graph(dep.model, Phase.PREFILL, batch, prompt_tokens, tp=dep.tp, layers=1)
        return step_materialised(dep.arch, graph, dep.fusion, dep.execution).workspace_bytes

    key = (dep.arch, dep.model, dep.tp, dep.fusion, dep.execution, batch, prompt_tokens)
    return active_cache().get_or_compute("workspace", key, compute)


def weight_bytes_per_rank(cfg: ModelConfig, tp: int) -> float:
    """Parameter bytes one TP rank holds: from the model's first layers with the last one
    repeated when that is exact (no 30-80 layer graph), else from the whole graph."""
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
