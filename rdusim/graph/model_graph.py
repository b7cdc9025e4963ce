"""Whole-model graphs per TP rank, one step of a phase (the forward pass of
:mod:`rdusim.graph.forward`, training's forward+backward+optimizer of
:mod:`rdusim.graph.training`), shared through the run's cache."""

from __future__ import annotations

from rdusim.cache import active_cache
from rdusim.config.model import ModelConfig
from rdusim.errors import InputError
from rdusim.graph.forward import check_request, inference_build
from rdusim.graph.forward import ForwardBuild, forward_build, forward_ops, head_op, vocab_shard  # noqa: F401  (re-exported)
from rdusim.graph.opgraph import OpGraph
from rdusim.graph.phase import Phase
from rdusim.graph.training import training_build


def build_model_graph(cfg: ModelConfig, phase: Phase, batch: int, seq: int, *, tp: int = 1,
                      layers: int | None = None, weight_density: float = 1.0,
                      origin: str = "request", new_tokens: int = 1) -> OpGraph:
    """The graph one TP rank runs for one step of ``phase``.

    ``weight_density`` < 1 makes the decoder layers' linear weights sparse (sparseGPT):
    their GEMM FLOPs scale with it and their bytes count non-zeros plus 2-byte indices;
    parameters still count dense elements. ``origin`` names the request in errors.
    ``new_tokens`` > 1 (decode only): a step computing that many tokens over a cache of ``seq``
    (verifying a speculative draft), with logits at every new position."""
    check_request(cfg, phase, batch, seq, tp, origin, weight_density)
    if new_tokens != 1 and (phase != Phase.DECODE or isinstance(new_tokens, bool) or not isinstance(new_tokens, int)
                            or new_tokens < 1):
        raise InputError(origin, "new_tokens", "a positive integer, more than 1 only in decode", new_tokens)
    args = (cfg, phase, batch, seq, tp, layers, weight_density, new_tokens)
    return active_cache().get_or_compute("graph", args, lambda: _build(*args))


def _build(cfg: ModelConfig, phase: Phase, batch: int, seq: int, tp: int, layers: int | None,
           weight_density: float, new_tokens: int = 1) -> OpGraph:
    """Graphs are immutable, so one built for the same request is shared through the run's
    cache (studies ask for the same 80-layer graphs many times)."""
    if phase == Phase.TRAIN:
        ops, idle = training_build(cfg, batch, seq, tp=tp, layers=layers, weight_density=weight_density)
    else:
        fb = inference_build(cfg, phase, batch, seq, tp, layers, weight_density, new_tokens)
        ops, idle = fb.ops, fb.idle_weights
    n = f".n{new_tokens}" if new_tokens != 1 else ""
    return OpGraph(f"{cfg.name}.{phase.value}.b{batch}.s{seq}{n}.tp{tp}", ops, source=cfg.name,
                   idle_weights=idle)
