"""Serving one batch on a DGX: prefill (first token) then decode steps with a growing KV cache.

Decode steps are simulated at a few cache lengths (first and last; also the
middle for long outputs) and interpolated linearly in between: per-step time is affine in the context
length apart from small wave-quantisation steps. Results are cached by their
inputs (arch and request are frozen and hashable), because the CoE study asks
for the same router and expert runs many times.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from rdusim.config.arch_gpu import GpuArch
from rdusim.config.model import ModelConfig
from rdusim.config.policy import FusionPolicy, LaunchMode
from rdusim.engine.gpu.launch import launch_cost_s
from rdusim.engine.gpu.repeat import TEMPLATE_LAYERS, repeated_kernels
from rdusim.engine.gpu.step import check_tp, graph_batch, simulate_kernels, simulate_step
from rdusim.engine.inference import BREAKDOWN_KEYS, InferenceRequest, InferenceTiming, frozen
from rdusim.engine.step import StepResult
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase

LONG_DECODE_STEPS = 64   # beyond this many decode steps, also simulate the middle cache length


def simulate_inference(arch: GpuArch, req: InferenceRequest) -> InferenceTiming:
    check_tp(arch, req.tp)
    launch_cost_s(arch, req.launch)          # rejects RDU launch modes early
    return _simulate(arch, req)


@lru_cache(maxsize=64)    # each entry holds ~1-2 MB of per-kernel records
def _simulate(arch: GpuArch, req: InferenceRequest) -> InferenceTiming:
    prefill = gpu_step(arch, req.model, Phase.PREFILL, req.batch, req.prompt_tokens, req.tp, req.fusion, req.launch)
    steps = req.output_tokens - 1
    parts = {k: prefill.breakdown_s[k] for k in BREAKDOWN_KEYS}
    records = [{"phase": "prefill", **r} for r in prefill.records]
    tpot = 0.0
    if steps > 0:
        # decode step j (1..steps) reads a cache of prompt + j - 1 tokens
        cache = np.arange(req.prompt_tokens, req.prompt_tokens + steps, dtype=float)
        ends = {int(cache[0]), int(cache[-1])}
        points = sorted(ends | {int(cache[len(cache) // 2])} if steps > LONG_DECODE_STEPS else ends)
        results = [gpu_step(arch, req.model, Phase.DECODE, req.batch, s, req.tp, req.fusion, req.launch)
                   for s in points]
        xs = np.array(points, dtype=float)
        mean = lambda ys: float(np.mean(np.interp(cache, xs, np.array(ys, dtype=float))))  # noqa: E731
        tpot = mean([r.time_s for r in results])
        for k in BREAKDOWN_KEYS:
            parts[k] += steps * mean([r.breakdown_s[k] for r in results])
        records += [{"phase": "decode", **r} for r in results[0].records]
    latency = prefill.time_s + steps * tpot
    # keep the breakdown summing to the latency exactly despite rounding
    largest = max(parts, key=parts.get)
    parts[largest] += latency - sum(parts.values())
    return InferenceTiming(ttft_s=prefill.time_s, tpot_s=tpot, latency_s=latency, breakdown_s=frozen(parts),
                           weight_bytes_per_device=weight_bytes_per_device(req.model, req.tp),
                           kv_bytes_per_device=kv_bytes_per_device(req.model, req.tp, req.batch,
                                                                   req.prompt_tokens + req.output_tokens),
                           records=tuple(records))


@lru_cache(maxsize=32)
def gpu_step(arch: GpuArch, cfg: ModelConfig, phase: Phase, batch: int, seq: int, tp: int,
             fusion: FusionPolicy, launch: LaunchMode) -> StepResult:
    """One step; its kernels come from the model's first layers with the middle one repeated
    (:mod:`rdusim.engine.gpu.repeat`: the same kernels, without the whole model's graph)."""
    if cfg.num_hidden_layers > TEMPLATE_LAYERS:
        head = build_model_graph(cfg, phase, batch, seq, tp=tp, layers=TEMPLATE_LAYERS)
        kernels = repeated_kernels(head, cfg.num_hidden_layers, fusion, arch)
        if kernels is not None:
            return simulate_kernels(arch, kernels, graph_batch(head), launch=launch, tp=tp)
    graph = build_model_graph(cfg, phase, batch, seq, tp=tp)
    return simulate_step(arch, graph, fusion=fusion, launch=launch, tp=tp)


@lru_cache(maxsize=64)
def weight_bytes_per_device(cfg: ModelConfig, tp: int) -> float:
    return build_model_graph(cfg, Phase.DECODE, 1, 1, tp=tp).param_bytes


def kv_bytes_per_device(cfg: ModelConfig, tp: int, batch: int, tokens: int) -> float:
    kv_heads = max(1, cfg.num_key_value_heads // tp)
    per_token = 2 * cfg.num_hidden_layers * kv_heads * cfg.head_dim * cfg.torch_dtype.nbytes
    return float(per_token * batch * tokens)
