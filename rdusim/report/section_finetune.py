"""The fine-tuning section: per platform, dataset and MoE mode, the largest batch, the job,
and a chart of queries per second."""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

from rdusim.report.colors import platform_color
from rdusim.report.document import Figure, Section, Table
from rdusim.report.figures import finish, legend_outside, new_figure, style_axes
from rdusim.rows.finetune import from_metrics

PARTS = ("forward", "backward", "recompute", "optimizer", "dequant")


def _values(metrics: Mapping) -> dict[tuple[str, str, str], dict]:
    out: dict = {}
    for r in from_metrics(metrics):
        out.setdefault((r.platform, r.dataset, r.moe), {})[r.metric] = r.value
    return out


def _table(v: dict, keys: Sequence[tuple[str, str, str]], extra: Mapping) -> Table:
    rows = []
    for key in keys:
        d = v[key]
        binding = extra.get("binding", {}).get(".".join(key), "")
        if d.get("oom") or d.get("engine_oom"):
            rows.append((*key, "OOM", binding, None, None, None, None, *([None] * len(PARTS))))
            continue
        split = [d.get(f"split.{p}_s") for p in PARTS]
        rows.append((*key, d.get("max_batch"), binding, d.get("step_s"), d.get("queries_per_s"), d.get("steps"),
                     d.get("job_hours"), *split))
    return Table("finetune_jobs", "Largest batch and job time per platform, dataset and MoE mode",
                 ("platform", "dataset", "moe", "max batch", "binds", "step (s)", "queries/s", "steps", "job (h)",
                  *(f"{p} (s)" for p in PARTS)), tuple(rows),
                 note="max batch: every query padded to the dataset's longest (finetune.P.D.M.memory.*); "
                      "step: the expected step over the padded length's distribution; the split is the middle "
                      "padded length's step, a fused kernel counted under its first op.")


def _figure(v: dict, keys: Sequence[tuple[str, str, str]]) -> Optional[Figure]:
    runs = [k for k in keys if v[k].get("queries_per_s")]
    if not runs:
        return None
    plats = list(dict.fromkeys(k[0] for k in runs))
    combos = list(dict.fromkeys((k[1], k[2]) for k in runs))
    fig = new_figure(8.0, 1.4 + 0.45 * len(combos) * len(plats) ** 0.5 + 1.2)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(plats)
    y = np.arange(len(combos))
    for i, p in enumerate(plats):
        vals = [v.get((p, d, m), {}).get("queries_per_s") or 0.0 for d, m in combos]
        ax.barh(y + i * width, vals, width, color=platform_color(p), label=p, edgecolor="black", linewidth=0.4)
    ax.set_yticks(y + width * (len(plats) - 1) / 2)
    ax.set_yticklabels([f"{d} / {m}" for d, m in combos])
    ax.invert_yaxis()
    style_axes(ax, "training throughput (queries/s)", "dataset / MoE mode")
    legend_outside(ax)
    return finish(fig, "finetune_throughput", "Fine-tuning throughput at the largest batch",
                  "Queries per second of each platform at the largest batch that fits (0: out of memory).")


def build(metrics: Mapping, extra: Mapping) -> Optional[Section]:
    v = _values(metrics)
    if not v:
        return None
    order = {p: i for i, p in enumerate(extra.get("platforms", []))}
    keys = sorted(v, key=lambda k: (order.get(k[0], len(order)), k[1], k[2]))
    fig = _figure(v, keys)
    return Section("Fine-tuning", f"{extra.get('model', '')} fine-tuning: {extra.get('training', '')}.",
                   (_table(v, keys, extra),), (fig,) if fig is not None else (),
                   () if fig is not None else ("No throughput figure: no platform fits a batch.",))
