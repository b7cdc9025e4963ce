"""Serving figures: latency percentiles against load, throughput against p99 TTFT,
the CDF of TTFT, and KV-cache occupancy / queue length over time."""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
from matplotlib.lines import Line2D

from rdusim.report.colors import platform_color
from rdusim.report.document import Figure
from rdusim.report.figures import finish, legend_outside, new_figure, style_axes

STYLE = {"continuous": "-", "coe": "-", "static": "--", "adapters": ":"}
MARK = {"continuous": "o", "coe": "o", "static": "s", "adapters": "^"}

Curves = Mapping[tuple[str, str], Sequence[Mapping[str, float]]]   # (platform, mode) -> points by rate


def _line(ax, x, y, plat, mode, label, lo=None, hi=None, width=1.6):
    x, y = np.asarray(x, float), np.asarray(y, float)
    ax.plot(x, y, STYLE.get(mode, "-"), marker=MARK.get(mode, "o"), markersize=4, color=platform_color(plat),
            linewidth=width, label=label)
    if lo is not None:
        yerr = np.vstack([y - np.asarray(lo, float), np.asarray(hi, float) - y])
        ax.errorbar(x, y, yerr=np.where(np.isfinite(yerr), yerr, 0), fmt="none", ecolor=platform_color(plat),
                    elinewidth=0.8, capsize=2)


def latency_vs_load(curves: Curves) -> Optional[Figure]:
    if not any(len(v) >= 2 for v in curves.values()):
        return None
    fig = new_figure(13.0, 4.2)
    panels = (("ttft", "TTFT (s)"), ("tpot", "TPOT (s)"), ("e2e", "end-to-end (s)"))
    for i, (key, label) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        for (plat, mode), pts in curves.items():
            x = [p["rate_per_s"] for p in pts]
            _line(ax, x, [p.get(f"{key}.p99_s", np.nan) for p in pts], plat, mode, f"{plat} {mode} p99",
                  [p.get(f"{key}.p99_ci_lo_s", np.nan) for p in pts], [p.get(f"{key}.p99_ci_hi_s", np.nan) for p in pts])
            ax.plot(x, [p.get(f"{key}.p50_s", np.nan) for p in pts], ":", color=platform_color(plat), linewidth=1)
        ax.set_yscale("log")
        style_axes(ax, "offered load (requests/s)", label)
    handles = fig.axes[0].get_legend_handles_labels()[0]
    legend_outside(fig.axes[-1], handles + [Line2D([], [], linestyle=":", color="black", label="p50 (dotted)")])
    return finish(fig, "serve_latency_vs_load", "Latency percentiles against load",
                  "p99 (markers; one run per rate, so no interval: the main point's replicated intervals are in the "
                  "tables) and p50 (dotted) of time to first token, "
                  "time per output token and end-to-end latency against the offered request rate; solid: continuous "
                  "batching (or CoE serving), dashed: static batching.")


def throughput_vs_ttft(curves: Curves) -> Optional[Figure]:
    if not any(len(v) >= 2 for v in curves.values()):
        return None
    fig = new_figure(9.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    for (plat, mode), pts in curves.items():
        _line(ax, [p.get("ttft.p99_s", np.nan) for p in pts], [p.get("requests_per_s", np.nan) for p in pts],
              plat, mode, f"{plat} {mode}")
    ax.set_xscale("log")
    style_axes(ax, "p99 time to first token (s)", "throughput (requests/s)")
    legend_outside(ax)
    return finish(fig, "serve_throughput_vs_ttft", "Throughput against p99 TTFT",
                  "Each point is one offered load; at equal p99 TTFT the higher curve serves more requests per second.")


def ttft_cdf(samples: Mapping[tuple[str, str], Sequence[float]]) -> Optional[Figure]:
    if not samples:
        return None
    fig = new_figure(9.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    for (plat, mode), v in samples.items():
        x = np.sort(np.asarray(v, float))
        if len(x):
            ax.step(x, np.arange(1, len(x) + 1) / len(x), STYLE.get(mode, "-"), where="post",
                    color=platform_color(plat), label=f"{plat} {mode}")
    ax.set_xscale("log")
    style_axes(ax, "time to first token (s)", "fraction of requests")
    legend_outside(ax)
    return finish(fig, "serve_ttft_cdf", "CDF of time to first token",
                  "Measured requests of the workload's main load point.")


def occupancy(series: Mapping[tuple[str, str], Sequence[Mapping[str, float]]]) -> Optional[Figure]:
    """Small multiples: a row per platform, KV-cache occupancy left and queue length right, each
    batching mode one line (continuous in the platform's colour, static dashed grey); the
    columns share their y scale so the platforms compare at a glance."""
    if not series:
        return None
    plats = list(dict.fromkeys(plat for plat, _ in series))
    fig = new_figure(11.0, 1.0 + 2.1 * len(plats))
    axes = fig.subplots(len(plats), 2, sharex=True, sharey="col", squeeze=False)
    for row, plat in zip(axes, plats):
        for ax, (key, label) in zip(row, (("kv_occupancy", "KV blocks in use (fraction)"),
                                          ("queue", "requests waiting"))):
            for (p, mode), pts in series.items():
                if p == plat:
                    ax.plot([q["t_s"] for q in pts], [q[key] for q in pts], STYLE.get(mode, "-"),
                            color=_mode_colour(plat, mode), linewidth=0.8, drawstyle="steps-post")
            style_axes(ax, "time (s)" if ax in axes[-1] else "", label)
            ax.set_title(plat, fontsize=9, loc="left", color=platform_color(plat))
    names = {"continuous": "continuous batching (solid)", "static": "static batching (dashed grey)",
             "coe": "CoE serving (solid)", "adapters": "LoRA adapters over one base (dotted)"}
    modes = list(dict.fromkeys(mode for _, mode in series))
    legend_outside(axes[0][-1], [Line2D([], [], linestyle=STYLE.get(m, "-"), label=names.get(m, m),
                                        color="#666666" if m == "static" else "black") for m in modes])
    return finish(fig, "serve_kv_occupancy", "KV-cache occupancy and queue length over time",
                  "One row per platform at the workload's main load point, sampled at scheduling events: the "
                  "fraction of KV-cache blocks in use and the requests waiting to be admitted; solid: continuous "
                  "batching (or CoE serving) in the platform's colour, dashed grey: static batching.")


def _mode_colour(plat: str, mode: str) -> str:
    return "#666666" if mode == "static" else platform_color(plat)
