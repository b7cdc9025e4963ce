"""simulate_inference for the SN40L: a prefill step, then decode steps at growing context.

Decode cost is linear in the context length (only attention grows with it), so the
first and last decode steps are simulated and the mean step is their average; both
steps' kernels are mostly cache hits. Steps are memoised on their inputs, so requests
that differ only in output tokens share their prefill and first decode step.

A step's plan is compiled from the model's first two layers and the last one repeated
(:func:`rdusim.compiler.repeat.compile_repeated`: the same plan as compiling the whole
model, without building its 30-80 layer graph), or from the whole graph when that
shortcut does not apply.
"""

from __future__ import annotations

from functools import lru_cache

from rdusim.compiler import DEFAULT_TILES, Plan, compile_plan
from rdusim.compiler.repeat import TEMPLATE_LAYERS, compile_repeated, repeated_param_bytes
from rdusim.config.arch_rdu import RduArch
from rdusim.config.model import ModelConfig
from rdusim.config.policy import FusionPolicy, LaunchMode
from rdusim.engine.inference import BREAKDOWN_KEYS, InferenceRequest, InferenceTiming, frozen
from rdusim.engine.rdu.step import simulate_step
from rdusim.engine.step import StepResult
from rdusim.graph.decoder import LayerShape
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase


@lru_cache(maxsize=256)
def model_step(arch: RduArch, cfg: ModelConfig, phase: Phase, batch: int, seq: int, tp: int,
               fusion: FusionPolicy, launch: LaunchMode) -> tuple[StepResult, float]:
    """One step and the rank's parameter bytes."""
    plan, param_bytes = model_plan(arch, cfg, phase, batch, seq, tp, fusion)
    return simulate_step(arch, None, fusion=fusion, launch=launch, tp=tp, plan=plan), param_bytes


@lru_cache(maxsize=64)
def model_plan(arch: RduArch, cfg: ModelConfig, phase: Phase, batch: int, seq: int, tp: int,
               fusion: FusionPolicy) -> tuple[Plan, float]:
    """The step's plan (launch modes share it) and the rank's parameter bytes."""
    layers = cfg.num_hidden_layers
    if layers > TEMPLATE_LAYERS:
        head = build_model_graph(cfg, phase, batch, seq, tp=tp, layers=TEMPLATE_LAYERS)
        plan = compile_repeated(head, layers, arch, fusion, tiles=DEFAULT_TILES)
        param_bytes = repeated_param_bytes(head, layers)
        if plan is not None and param_bytes is not None:
            return plan, param_bytes
    graph = build_model_graph(cfg, phase, batch, seq, tp=tp)
    return compile_plan(graph, arch, fusion), graph.param_bytes


def simulate_inference(arch: RduArch, req: InferenceRequest) -> InferenceTiming:
    args = (req.batch, req.tp, req.fusion, req.launch)
    cfg = req.model
    prefill, weight_bytes = model_step(arch, cfg, Phase.PREFILL, req.batch, req.prompt_tokens, req.tp,
                                       req.fusion, req.launch)
    decode_steps = req.output_tokens - 1
    breakdown = dict(prefill.breakdown_s)
    records = [dict(r, phase="prefill") for r in prefill.records]
    tpot = 0.0
    if decode_steps > 0:
        first_seq, last_seq = req.prompt_tokens, req.prompt_tokens + decode_steps - 1
        seqs = sorted({first_seq, last_seq})
        steps = [model_step(arch, cfg, Phase.DECODE, args[0], s, args[1], args[2], args[3])[0] for s in seqs]
        tpot = sum(s.time_s for s in steps) / len(steps)
        for key in BREAKDOWN_KEYS:
            breakdown[key] = breakdown.get(key, 0.0) + decode_steps * sum(s.breakdown_s.get(key, 0.0)
                                                                            for s in steps) / len(steps)
        records += [dict(r, phase="decode") for r in steps[0].records]
    latency = prefill.time_s + decode_steps * tpot
    shape = LayerShape(cfg, req.tp)
    kv = (2 * cfg.num_hidden_layers * shape.kv_heads * cfg.head_dim * cfg.torch_dtype.nbytes
          * req.batch * (req.prompt_tokens + req.output_tokens))
    return InferenceTiming(ttft_s=prefill.time_s, tpot_s=tpot, latency_s=latency, breakdown_s=frozen(breakdown),
                           weight_bytes_per_device=weight_bytes, kv_bytes_per_device=float(kv),
                           records=tuple(records))
