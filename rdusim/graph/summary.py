"""Plain-data summaries of a graph: totals, per-op rows (for ``rdusim graph``)."""

from __future__ import annotations

from rdusim.config.model import ModelConfig
from rdusim.graph.opgraph import OpGraph
from rdusim.graph.ops import Op
from rdusim.config.model import load_model
from rdusim.config.yamlio import load_yaml
from rdusim.errors import InputError
from rdusim.graph.from_yaml import graph_from_mapping
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase


def op_row(op: Op) -> dict:
    return {
        "name": op.name, "kind": op.kind.value, "layer": op.layer, "block": op.block, "tag": op.tag,
        "outputs": [list(t.shape) for t in op.outputs],
        "flops": op.flops, "bytes_read": op.bytes_read, "bytes_written": op.bytes_written,
        "weight_bytes": op.weight_bytes,
        "oi_flops_per_byte": op.oi_flops_per_byte if op.bytes else None,
    }


def _totals_row(graph: OpGraph) -> dict:
    """Parameters, FLOPs, bytes and operational intensity, unfused and fused (boundary bytes)."""
    t = graph.totals
    fused = graph.boundary_bytes
    return {
        "params": graph.params, "param_bytes": graph.param_bytes,
        "flops": t.flops, "bytes": t.bytes, "bytes_read": t.bytes_read, "bytes_written": t.bytes_written,
        "oi_flops_per_byte": t.oi_flops_per_byte,
        "fused_boundary_bytes": fused,
        "fused_oi_flops_per_byte": t.flops / fused if fused else None,
    }


def graph_summary(cfg: ModelConfig, graph: OpGraph, phase: str, batch: int, seq: int, *, tp: int = 1) -> dict:
    """Totals and per-op rows. ``flops_per_param_per_token`` divides by the tokens
    processed (batch in decode, batch*seq otherwise); KV-cache bytes per token are for
    the whole model and one sequence at the model's dtype."""
    tokens = batch * (1 if phase == "decode" else seq)
    return {
        "model": cfg.name, "phase": phase, "batch": batch, "seq": seq, "tp": tp,
        **_totals_row(graph),
        "flops_per_param_per_token": graph.totals.flops / graph.params / tokens,
        "kv_cache_bytes_per_token": cfg.kv_cache_bytes_per_token,
        "num_ops": len(graph),
        "ops": [op_row(o) for o in graph.ops],
    }


def summarize_request(model: str, phase: str | None, batch: int, seq: int, tp: int = 1) -> dict:
    """Summary for ``rdusim graph``: MODEL is a name in models/, a model YAML, or a
    user-written graph YAML (a mapping with ``ops``; phase, batch, seq, tp do not apply)."""
    from pathlib import Path


    p = Path(model)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        data = load_yaml(p)
        if isinstance(data, dict) and "ops" in data:
            return custom_summary(graph_from_mapping(data, str(p)))
    if phase is None:
        raise InputError("command line", "--phase", "one of prefill, decode, train for a model", "none given")
    cfg = load_model(model)
    graph = build_model_graph(cfg, Phase(phase), batch, seq, tp=tp, origin="command line")
    return graph_summary(cfg, graph, phase, batch, seq, tp=tp)


def custom_summary(graph: OpGraph) -> dict:
    return {
        "model": graph.name, "phase": None, "batch": None, "seq": None, "tp": None,
        **_totals_row(graph),
        "flops_per_param_per_token": None, "kv_cache_bytes_per_token": None,
        "num_ops": len(graph),
        "ops": [op_row(o) for o in graph.ops],
    }
