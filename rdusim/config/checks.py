"""Checks of a loaded workload that need its models and machines, run before anything is
simulated: tensor-parallel degrees the models split by, prompts that fit the model's
context, routing traces that match the experts. Each failure is an InputError naming the
workload file and dotted key (an error raised later, inside a SimPy process, would surface
far from its cause)."""

from __future__ import annotations

from typing import Any

from rdusim.config.model import ModelConfig, load_model
from rdusim.config.yamlio import load_yaml
from rdusim.errors import InputError
from rdusim.paths import resolve   # a path in the workload: beside it, then the shipped data


def check_workload(loaded: Any) -> None:
    kind = loaded.kind.value
    if kind == "model":
        _check_model_kind(loaded)
    elif kind == "coe":
        _check_coe_kind(loaded)
    elif kind == "fusion":
        _check_fusion_kind(loaded)
    elif kind == "serve":
        _check_serve_kind(loaded)
    elif kind == "finetune":
        _check_finetune_kind(loaded)


def model_of(loaded: Any, name: str, key: str) -> ModelConfig:
    """A model named in the workload (a name in models/ or a YAML path beside the workload)."""
    path = str(resolve(name, loaded.file)) if name.endswith((".yaml", ".yml")) else name
    try:
        return load_model(path)
    except InputError as exc:
        if exc.key != "model":          # the model file itself is bad: report it where it is
            raise
        raise InputError(loaded.file, key, exc.expected, name) from None


def check_tp_divides(cfg: ModelConfig, tp: int, file: str, key: str) -> None:
    kvh = cfg.num_key_value_heads
    if cfg.num_attention_heads % tp or cfg.intermediate_size % tp or (kvh % tp if kvh >= tp else tp % kvh):
        raise InputError(file, key, f"a divisor of {cfg.name}'s num_attention_heads ({cfg.num_attention_heads}) "
                         f"and intermediate_size ({cfg.intermediate_size}) that divides or is divided by "
                         f"num_key_value_heads ({kvh})", tp)


def check_context(cfg: ModelConfig, tokens: int, file: str, key: str, what: str) -> None:
    """``tokens`` positions must fit the context. Generating T tokens after a prompt of P
    reads P + T - 1 positions (the last token generated is never fed back)."""
    limit = cfg.max_position_embeddings
    if tokens > limit:
        raise InputError(file, key, f"{what} within {cfg.name}'s context of {limit} tokens "
                         "(max_position_embeddings)", tokens)


def _check_model_kind(loaded: Any) -> None:
    spec = loaded.spec
    cfg = model_of(loaded, spec.model, "model")
    for name, plat in spec.platforms.items():
        check_tp_divides(cfg, plat.tp, loaded.file, f"platforms.{name}.tp")
    check_context(cfg, spec.prompt_tokens + spec.output_tokens - 1, loaded.file, "prompt_tokens",
                  f"prompt_tokens + output_tokens - 1 ({spec.prompt_tokens} + {spec.output_tokens} - 1)")
    sp = getattr(spec, "speculative", None)
    if sp is not None:     # the last verification reads `lookahead` drafted positions past the last token
        check_context(cfg, spec.prompt_tokens + spec.output_tokens - 1 + sp.lookahead, loaded.file,
                      "speculative.lookahead", f"prompt_tokens + output_tokens - 1 + speculative.lookahead "
                      f"({spec.prompt_tokens} + {spec.output_tokens} - 1 + {sp.lookahead})")


def _check_coe_kind(loaded: Any) -> None:
    spec = loaded.spec
    router = model_of(loaded, spec.router.model, "router.model")
    expert = model_of(loaded, spec.experts.model, "experts.model")
    for name, plat in spec.platforms.items():
        check_tp_divides(router, plat.tp, loaded.file, f"platforms.{name}.tp")
        check_tp_divides(expert, plat.tp, loaded.file, f"platforms.{name}.tp")
    check_context(router, spec.prompt_tokens + spec.router.output_tokens - 1, loaded.file, "prompt_tokens",
                  f"prompt_tokens + router.output_tokens - 1 ({spec.prompt_tokens} + {spec.router.output_tokens} - 1)")
    longest = max(spec.output_tokens + (spec.footprint.output_tokens,))
    check_context(expert, spec.prompt_tokens + longest - 1, loaded.file, "prompt_tokens",
                  f"prompt_tokens + the longest output_tokens - 1 ({spec.prompt_tokens} + {longest} - 1)")
    if spec.routing.trace is not None:
        _check_trace(loaded, spec)


def _check_trace(loaded: Any, spec: Any) -> None:
    path = resolve(spec.routing.trace, loaded.file)
    if not path.is_file():
        raise InputError(loaded.file, "routing.trace", "a YAML file of expert ids (beside the workload or "
                         "in the shipped data)", spec.routing.trace)
    data = load_yaml(path)
    if not isinstance(data, list) or not data:
        raise InputError(str(path), "(top level)", "a non-empty YAML list of expert ids (integers >= 0)",
                         data if not isinstance(data, list) else data[:10])
    count = spec.experts.count
    for i, v in enumerate(data):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < count:
            raise InputError(str(path), f"[{i}]", f"expert ids >= 0 and below experts.count ({count})", v)


def _check_fusion_kind(loaded: Any) -> None:
    spec = loaded.spec
    for i, bench in enumerate(spec.benchmarks):
        if bench.is_fft:
            continue
        where = f"benchmarks[{i}]"
        cfg = model_of(loaded, bench.model, f"{where}.model")
        for name, plat in spec.platforms.items():
            tp = bench.tp or plat.tp
            key = f"{where}.tp" if bench.tp else f"platforms.{name}.tp"
            check_tp_divides(cfg, tp, loaded.file, key)
        check_context(cfg, bench.seq, loaded.file, f"{where}.seq", "a sequence")


def _check_serve_kind(loaded: Any) -> None:
    spec = loaded.spec
    cfg = model_of(loaded, spec.model, "model")
    for name, plat in spec.platforms.items():
        check_tp_divides(cfg, plat.tp, loaded.file, f"platforms.{name}.tp")


def _check_finetune_kind(loaded: Any) -> None:
    """The model loads, trains in its dtype, divides over each platform's TP degree, and the
    training method and MoE modes apply to it."""
    spec = loaded.spec
    cfg = model_of(loaded, spec.model, "model")
    for name, plat in spec.platforms.items():
        check_tp_divides(cfg, plat.tp, loaded.file, f"platforms.{name}.tp")
        if loaded.launch(name) not in loaded.archs[name].LAUNCH_MODES:
            raise InputError(loaded.file, f"platforms.{name}.launch",
                             f"one of {[m.value for m in loaded.archs[name].LAUNCH_MODES]}", loaded.launch(name).value)
    if any(m.value == "dense" for m in spec.moe) and not cfg.is_moe:
        raise InputError(loaded.file, "moe", f"sparse only: {cfg.name} has no experts to train densely", "dense")
    if spec.training.method.value == "bitfit" and not cfg.attention_bias and not cfg.mlp_bias:
        raise InputError(loaded.file, "training.method", f"a method with weights to train in {cfg.name} "
                         "(BitFit trains bias vectors, and it has none)", "bitfit")
