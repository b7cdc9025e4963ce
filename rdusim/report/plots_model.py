"""Model-run figures: where the time goes per platform, and TTFT / TPOT."""

from __future__ import annotations

from typing import Optional

import numpy as np
from matplotlib.lines import Line2D

from rdusim.report.colors import breakdown_color, platform_color
from rdusim.report.document import Figure
from rdusim.report.figures import finish, legend_outside, new_figure, style_axes
from rdusim.report.keys import ModelView

TITLE_BREAKDOWN = "Latency breakdown per platform"
TITLE_TOKENS = "Time to first token and time per output token"


def breakdown(v: ModelView) -> Optional[Figure]:
    plats = [p for p in v.platforms if v.breakdown.get(p) or v.values.get(p, {}).get("latency_s") is not None]
    comps = v.components()
    if not plats or not comps:
        return None
    fig = new_figure(8.0, 1.6 + 0.6 * len(plats))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(plats))
    left = np.zeros(len(plats))
    for c in comps:
        vals = np.array([1e3 * (v.breakdown.get(p, {}).get(c) or 0.0) for p in plats])
        ax.barh(y, vals, 0.6, left=left, color=breakdown_color(c), label=c, edgecolor="black", linewidth=0.4)
        left += vals
    totals = [v.values.get(p, {}).get("latency_s") for p in plats]
    for yi, t in zip(y, totals):
        if t is not None:
            ax.plot([1e3 * t], [yi], marker="|", markersize=22, color="black")
    ax.set_yticks(y)
    ax.set_yticklabels(plats)
    for tick, p in zip(ax.get_yticklabels(), plats):
        tick.set_color(platform_color(p))
    ax.invert_yaxis()
    style_axes(ax, "time (ms)", "platform")
    handles, _ = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], marker="|", markersize=12, color="black", linestyle="none",
                          label="end-to-end latency"))
    legend_outside(ax, handles)
    return finish(fig, "model_breakdown", TITLE_BREAKDOWN,
                  "Time spent in compute, memory traffic, kernel launch, collectives and host work; the black "
                  "tick is the end-to-end latency (components may overlap, so they need not add up to it).")


def tokens(v: ModelView) -> Optional[Figure]:
    plats = [p for p in v.platforms if any(v.values.get(p, {}).get(k) is not None for k in ("ttft_s", "tpot_s"))]
    if not plats:
        return None
    fig = new_figure(8.0, 3.8)
    for i, (key, lbl) in enumerate((("ttft_s", "time to first token (ms)"), ("tpot_s", "time per output token (ms)"))):
        ax = fig.add_subplot(1, 2, i + 1)
        vals = [v.values.get(p, {}).get(key) for p in plats]
        ax.bar(range(len(plats)), [np.nan if x is None else 1e3 * x for x in vals],
               color=[platform_color(p) for p in plats], edgecolor="black", linewidth=0.4)
        ax.set_xticks(range(len(plats)))
        ax.set_xticklabels(plats, fontsize=8)
        style_axes(ax, "platform", lbl)
    return finish(fig, "model_tokens", TITLE_TOKENS, "Prefill latency (TTFT) and decode step time (TPOT).")


TITLE_CURVE = "Latency-throughput per machine size and weight format"


def latency_throughput(v: ModelView) -> Optional[Figure]:
    """The scaling study's curves: decode step time against tokens/s per device, one line per
    (weight format, machine size), a marker per batch."""
    lines = {k: sorted((b, p["tpot_s"], p["tokens_per_s_per_device"]) for b, p in c.items()
                       if "tpot_s" in p and "tokens_per_s_per_device" in p) for k, c in v.curves.items()}
    lines = {k: pts for k, pts in lines.items() if pts}
    if not lines:
        return None
    fig = new_figure(8.0, 4.6)
    ax = fig.add_subplot(1, 1, 1)
    styles = ("-", "--", ":", "-.")
    formats = sorted({k.split(" ")[1] for k in lines})
    sizes = sorted({k.split(" ", 2)[2] for k in lines})
    for label, pts in sorted(lines.items()):
        _, fmt, size = label.split(" ", 2)
        ax.plot([p[2] for p in pts], [1e3 * p[1] for p in pts], marker="o", markersize=3,
                color=f"C{sizes.index(size) % 10}", linestyle=styles[formats.index(fmt) % len(styles)], label=label)
    ax.set_xscale("log")
    style_axes(ax, "tokens/s per device", "decode step (ms)")
    legend_outside(ax, ax.get_legend_handles_labels()[0])
    return finish(fig, "model_latency_throughput", TITLE_CURVE,
                  "Each line is one weight format (line style) on one machine size (colour) (tensor parallel over all its devices); "
                  "markers are the batches of scaling.batches that fit, growing to the right.")
