"""CoE figures: time components (paper Figure 2), latency vs experts with OOM
(Figure 7), nodes needed vs experts (Figure 8), expert-cache hit rate."""

from __future__ import annotations

import math
from typing import Optional

from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from rdusim.report.colors import COMPONENT_ALPHA, COMPONENT_HATCH, platform_color
from rdusim.report.document import Figure
from rdusim.report.figures import finish, legend_outside, new_figure, style_axes
from rdusim.report.keys import CoeView, Scenario

COMPONENTS = ("router", "switch", "expert")
_STYLES = ("-", "--", "-.", ":")   # so equal curves of two platforms stay visible

TITLE_BREAKDOWN = "CoE latency per batch: router, expert switch, expert execution"
TITLE_SWEEP = "CoE latency vs number of experts"
TITLE_FOOTPRINT = "Nodes needed vs number of experts"
TITLE_HIT_RATE = "Expert-cache hit rate"


def breakdown(view: CoeView) -> Optional[Figure]:
    """Stacked bars, one panel per scenario (each with its own scale), one bar per
    platform, stacks router / switch / expert."""
    panels: dict[Scenario, list[tuple[str, list[float]]]] = {}
    for s in view.scenario_list():
        for p in view.platforms:
            vals = view.scenarios.get((p, s), {})
            parts = [vals.get(f"{c}_s") for c in COMPONENTS]
            if any(v is not None for v in parts):
                panels.setdefault(s, []).append((p, [v or 0.0 for v in parts]))
    if not panels:
        return None
    rows, cols = _grid(len(panels))
    width = max(len(b) for b in panels.values())
    fig = new_figure(max(4.0, 1.2 + 0.9 * width) * cols + 1.5, 3.3 * rows + 0.6)
    for i, (s, bars) in enumerate(panels.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        for x, (p, parts) in enumerate(bars):
            bottom = 0.0
            for comp, val in zip(COMPONENTS, parts):
                ax.bar(x, val, 0.7, bottom=bottom, color=platform_color(p), alpha=COMPONENT_ALPHA[comp],
                       hatch=COMPONENT_HATCH[comp], edgecolor="black", linewidth=0.5)
                bottom += val
        ax.set_xticks(range(len(bars)))
        ax.set_xticklabels([p for p, _ in bars], fontsize=8)
        ax.set_title(s.label, fontsize=10)
        style_axes(ax, "platform", "time per batch (s)")
    handles = [Patch(facecolor=platform_color(p), label=p) for p in view.platforms]
    handles += [Patch(facecolor="white", edgecolor="black", hatch=COMPONENT_HATCH[c] or None,
                      alpha=COMPONENT_ALPHA[c], label=c) for c in COMPONENTS]
    legend_outside(fig.axes[min(cols, len(fig.axes)) - 1], handles)
    return finish(fig, "coe_breakdown", TITLE_BREAKDOWN,
                  "One panel per scenario (BS = CoE batch size, tok = output tokens), each with its own scale; "
                  "the stacks are router execution, copying the chosen experts into HBM (switch) and expert "
                  "execution (paper Figure 2).")


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 2)
    return math.ceil(n / cols), cols


def sweep(view: CoeView) -> Optional[Figure]:
    """Latency vs number of experts per platform, one panel per scenario; OOM marked."""
    scenarios = sorted({s for _, s in view.sweep})
    if not scenarios:
        return None
    rows, cols = _grid(len(scenarios))
    fig = new_figure(6.0 * cols + 1.5, 3.8 * rows)
    handles: dict[str, Line2D] = {}
    for i, s in enumerate(scenarios):
        ax = fig.add_subplot(rows, cols, i + 1)
        ok_pts, oom_pts = [], []
        for k, p in enumerate(view.platforms):
            pts = view.sweep.get((p, s))
            if not pts:
                continue
            line = [(n, d.get("latency_s")) for n, d in sorted(pts.items())
                    if d.get("latency_s") is not None and not d.get("oom")]
            if line:
                ax.plot(*zip(*line), _STYLES[k % 4], marker="o", markersize=3, color=platform_color(p), label=p)
                ok_pts += [y for _, y in line]
            oom = [(n, d.get("latency_s")) for n, d in sorted(pts.items()) if d.get("oom")]
            oom_pts += [(p, n, y) for n, y in oom]
        positive = [y for y in ok_pts + [y for _, _, y in oom_pts if y is not None] if y > 0]
        if positive and max(positive) / min(positive) > 20:
            ax.set_yscale("log")
        if any(y is None for _, _, y in oom_pts) and positive:   # headroom for the OOM band
            lo, hi = ax.get_ylim()
            ax.set_ylim(lo, hi * (3.0 if ax.get_yscale() == "log" else 1.25))
        band = ax.get_xaxis_transform()      # x in data, y in axes fraction
        for p, n, y in oom_pts:
            k = view.platforms.index(p)
            where = dict(transform=band) if y is None else {}
            ax.plot([n], [1.0 - 0.06 * (k + 1)] if y is None else [y], marker="X", markersize=8,
                    linestyle="none", color=platform_color(p), markeredgecolor="black", **where)
        style_axes(ax, "number of experts", "latency per batch (s)")
        ax.set_title(s.label, fontsize=10)
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
        if oom_pts:
            handles["out of memory"] = Line2D([], [], marker="X", color="grey", markeredgecolor="black",
                                              linestyle="none", markersize=9, label="out of memory")
    if handles:          # one legend for every panel, beside the first row
        legend_outside(fig.axes[cols - 1], list(handles.values()), fontsize=8)
    return finish(fig, "coe_sweep", TITLE_SWEEP,
                  "Latency of one batch as the number of experts grows (paper Figure 7). An X marks an "
                  "expert count that does not fit the node (OOM); without a latency it is drawn in a band at the "
                  "top of the panel.")


def footprint(view: CoeView) -> Optional[Figure]:
    if not any(view.footprint.values()):
        return None
    fig = new_figure(8.5, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    for k, p in enumerate(view.platforms):
        pts = [(n, v) for n, v in sorted(view.footprint.get(p, {}).items()) if v is not None]
        if pts:
            ax.step(*zip(*pts), _STYLES[k % 4], where="post", marker="o", markersize=3, color=platform_color(p), label=p)
    style_axes(ax, "number of experts", "nodes needed")
    ax.set_ylim(bottom=0)
    legend_outside(ax, fontsize=8)
    return finish(fig, "coe_footprint", TITLE_FOOTPRINT,
                  "Nodes needed to serve N experts at the all-in-HBM latency (paper Figure 8).")


def hit_rate(view: CoeView) -> Optional[Figure]:
    rows = [(p, s, v["hit_rate"]) for (p, s), v in view.scenarios.items() if v.get("hit_rate") is not None]
    if not rows:
        return None
    scenarios: list[Scenario] = sorted({s for _, s, _ in rows})
    plats = [p for p in view.platforms if any(r[0] == p for r in rows)]
    fig = new_figure(max(5.0, 1.5 * len(scenarios) * max(1, len(plats)) / 2) + 1.5, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(1, len(plats))
    values = {(p, s): v for p, s, v in rows}
    for j, p in enumerate(plats):
        xs = [i + (j - (len(plats) - 1) / 2) * width for i in range(len(scenarios))]
        ys = [100.0 * values.get((p, s), float("nan")) for s in scenarios]
        ax.bar(xs, ys, width, color=platform_color(p), label=p, edgecolor="black", linewidth=0.5)
    ax.set_xticks(range(len(scenarios)))
    ax.set_xticklabels([s.label for s in scenarios])
    ax.set_ylim(0, 105)
    style_axes(ax, "scenario", "expert-cache hit rate (%)")
    legend_outside(ax, fontsize=8)
    return finish(fig, "coe_hit_rate", TITLE_HIT_RATE,
                  "Fraction of expert requests served from HBM without a switch.")


def all_figures(view: CoeView) -> tuple[list[Figure], list[str]]:
    figs, notes = [], []
    for fn, what in ((breakdown, "router/switch/expert times (coe.P.bs<B>.tok<T>.router_s ...)"),
                     (sweep, "an expert-count sweep (coe.P.bs<B>.tok<T>.experts<N>.latency_s)"),
                     (footprint, "footprint metrics (coe.footprint.P.nodes_for<N>)"),
                     (hit_rate, "expert-cache hit rates (coe.P.bs<B>.tok<T>.hit_rate)")):
        f = fn(view)
        if f is None:
            notes.append(f"No figure for {what}: the results have no such metrics.")
        else:
            figs.append(f)
    return figs, notes
