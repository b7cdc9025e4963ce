"""Speculative decoding in a model run (``speculative:`` in a ``model`` workload).

Per platform P, besides the plain run's ``model.P.*``: ``model.P.spec.tokens_per_step``,
``.steps``, ``.draft_s`` / ``.verify_s`` / ``.step_s`` (one mean speculative step),
``.ttft_s``, ``.tpot_s``, ``.latency_s``, ``.tokens_per_s`` (batch x output / latency),
``.decode_tokens_per_s`` (per sequence, 1 / tpot) and ``.plain_decode_tokens_per_s``,
``.speedup`` (plain latency / speculative latency), ``.breakdown.step.<key>_s``,
``.memory.*`` (rdusim.memory's per-device metrics) and ``.oom`` (1: the target and
draft do not fit; the reason in the run's notes, no timing metrics).
"""

from __future__ import annotations

import dataclasses

from rdusim.config.deployment import Deployment
from rdusim.config.formats import for_machine, with_checked_formats
from rdusim.config.model import ModelConfig, load_model
from rdusim.config.speculative import DraftPlacement, SpeculativeSpec
from rdusim.config.stack import Sampling
from rdusim.config.workload import LoadedWorkload, resolve_path
from rdusim.engine.breakdown import BREAKDOWN_KEYS
from rdusim.engine.speculative import SpeculativeTiming, devices_in_node, simulate_speculative
from rdusim.cache import RunCache
from rdusim.errors import InputError
from rdusim.rows.model import ModelScope


def load_draft(loaded: LoadedWorkload, target: ModelConfig) -> ModelConfig:
    """The draft model with its formats, checked against the target and every platform."""
    spec: SpeculativeSpec = loaded.spec.speculative
    name = spec.draft
    path = str(resolve_path(name, loaded.file)) if name.endswith((".yaml", ".yml")) else name
    try:
        cfg = load_model(path)
    except InputError as exc:
        raise InputError(loaded.file, "speculative.draft", exc.expected, name) from None
    if cfg.vocab_size != target.vocab_size:
        raise InputError(loaded.file, "speculative.draft", f"a model with {target.name}'s vocabulary "
                         f"({target.vocab_size} tokens) to draft its tokens", f"{cfg.name} ({cfg.vocab_size})")
    cfg = with_checked_formats(cfg, spec.draft_formats, loaded, "speculative.draft_formats")
    for pname, plat in loaded.spec.platforms.items():
        stack = loaded.stacks[pname]
        if spec.fused_draft_loop and stack.runtime is not None and stack.runtime.sampling == Sampling.HOST:
            raise InputError(loaded.file, "speculative.fused_draft_loop", f"false on platform {pname}: its stack "
                             f"{stack.name} samples on the host, so every draft pass returns its logits to the "
                             "host and the passes cannot run as one device-side loop", True)
        tp = spec.draft_tp or plat.tp
        kvh = cfg.num_key_value_heads
        if cfg.num_attention_heads % tp or cfg.intermediate_size % tp or (kvh % tp if kvh >= tp else tp % kvh):
            raise InputError(loaded.file, "speculative.draft_tp", f"a divisor of {cfg.name}'s attention heads "
                             f"({cfg.num_attention_heads}) and intermediate size that fits its KV heads ({kvh})", tp)
        devices = devices_in_node(loaded.deployment(pname, target))
        if spec.placement == DraftPlacement.SEPARATE and plat.tp + tp > devices:
            raise InputError(loaded.file, "speculative.draft_tp", f"at most {devices - plat.tp} devices: a separate "
                             f"draft sits beside platform {pname}'s tp {plat.tp} on its {devices}", tp)
        if spec.placement == DraftPlacement.SHARED and tp > plat.tp:
            raise InputError(loaded.file, "speculative.draft_tp", f"at most platform {pname}'s tp ({plat.tp}): a "
                             "shared draft sits on the target's devices", tp)
    return cfg


def draft_deployment(loaded: LoadedWorkload, name: str, draft: ModelConfig) -> Deployment:
    dep = loaded.deployment(name, draft)
    tp = loaded.spec.speculative.draft_tp
    return dataclasses.replace(dep, tp=tp) if tp else dep


def simulate(loaded: LoadedWorkload, name: str, target: ModelConfig, draft: ModelConfig,
             cache: RunCache) -> SpeculativeTiming:
    w = loaded.spec
    arch = loaded.archs[name]
    return simulate_speculative(loaded.deployment(name, for_machine(target, arch)),
                                draft_deployment(loaded, name, for_machine(draft, arch)),
                                w.speculative, w.prompt_tokens, w.output_tokens, w.batch_size, cache)


def metrics(batch: int, output_tokens: int, t: SpeculativeTiming) -> dict[str, float]:
    """The speculative run's values by metric name (the model rows of scope ``spec``)."""
    out = {"oom": 0 if t.oom is None else 1, "tokens_per_step": t.tokens_per_step,
           "plain_decode_tokens_per_s": 1.0 / t.plain.tpot_s if t.plain.tpot_s > 0 else 0.0}
    out.update(t.memory.values())
    if t.oom is not None:
        return out
    out.update({"steps": t.steps, "draft_s": t.draft_s, "verify_s": t.verify_s,
                "step_s": t.step_s, "ttft_s": t.ttft_s, "tpot_s": t.tpot_s,
                "latency_s": t.latency_s, "speedup": t.speedup,
                "tokens_per_s": batch * output_tokens / t.latency_s,
                "decode_tokens_per_s": 1.0 / t.tpot_s if t.tpot_s > 0 else 0.0})
    for k in BREAKDOWN_KEYS:
        out[f"breakdown.step.{k}_s"] = float(t.step_breakdown_s.get(k, 0.0))
    return out


def summary_lines(t: dict, platforms, notes: dict) -> list[str]:
    """``t``: the model rows by identity (``(platform, scope) -> {metric: value}``)."""
    rows = [p for p in platforms if "oom" in t.get((p, ModelScope.SPEC), {})]
    if not rows:
        return []
    lines = ["", "Speculative decoding: tokens/step | draft + verify ms per step | ms per token: plain -> "
             "speculative | speedup"]
    for p in rows:
        s, plain = t[(p, ModelScope.SPEC)], t.get((p, ModelScope.RUN), {})
        if s["oom"]:
            lines.append(f"  {p:<12} OOM: {notes.get(p + '.spec', '')}")
            continue
        lines.append(f"  {p:<12} {s['tokens_per_step']:5.2f} | {s['draft_s'] * 1e3:7.2f} + "
                     f"{s['verify_s'] * 1e3:7.2f} | {plain['tpot_s'] * 1e3:7.2f} -> "
                     f"{s['tpot_s'] * 1e3:7.2f} | {s['speedup']:.2f}x")
    return lines
