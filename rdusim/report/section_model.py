"""The model-run section: latency, TTFT, TPOT and the breakdown per platform."""

from __future__ import annotations

from typing import Optional

from rdusim.report import plots_model
from rdusim.report.document import Section, Table
from rdusim.report.keys import ModelView


def latency_table(v: ModelView) -> Table:
    comps = v.components()
    rows = []
    for p in v.platforms:
        d, b = v.values.get(p, {}), v.breakdown.get(p, {})
        if d.get("oom"):
            rows.append((p, "OOM", *([None] * (2 + len(comps)))))
            continue
        rows.append((p, d.get("latency_s"), d.get("ttft_s"), d.get("tpot_s"), *(b.get(c) for c in comps)))
    oom = [p for p in v.platforms if v.values.get(p, {}).get("oom")]
    note = ("OOM: the model does not fit the per-device memory of " + ", ".join(oom)
            + " (weights + KV cache + activations against usable HBM, and DDR on an RDU; model.P.memory.*),"
            " so it has no latency." if oom else "")
    return Table("model_latency", "Latency per platform",
                 ("platform", "latency (s)", "TTFT (s)", "TPOT (s)", *(f"{c} (s)" for c in comps)), tuple(rows),
                 note=note)


def build(v: ModelView) -> Optional[Section]:
    if v.empty:
        return None
    figures, notes = [], []
    for fn, what in ((plots_model.breakdown, "a latency breakdown (model.P.breakdown.<part>_s)"),
                     (plots_model.tokens, "TTFT/TPOT (model.P.ttft_s, model.P.tpot_s)")):
        f = fn(v)
        if f is None:
            notes.append(f"No figure for {what}: the results have no such metrics.")
        else:
            figures.append(f)
    if v.curves:                             # a scaling study (model.P.scaling.*.curve.*)
        f = plots_model.latency_throughput(v)
        if f is not None:
            figures.append(f)
    return Section("Model run", "End-to-end serving latency per platform: " + ", ".join(v.platforms) + ".",
                   (latency_table(v),), tuple(figures), tuple(notes))
