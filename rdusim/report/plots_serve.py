"""Serving figures: latency percentiles against load, throughput against p99 TTFT,
the CDF of TTFT, and KV-cache occupancy / queue length over time."""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

from rdusim.report.colors import platform_color
from rdusim.report.document import Figure
from rdusim.report.figures import finish, new_figure, style_axes

STYLE = {"continuous": "-", "coe": "-", "static": "--"}
MARK = {"continuous": "o", "coe": "o", "static": "s"}

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
    fig = new_figure(11.0, 4.2)
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
    fig.axes[0].legend(fontsize=6, loc="upper left")
    return finish(fig, "serve_latency_vs_load", "Latency percentiles against load",
                  "p99 (markers, with 95% batch-means confidence intervals) and p50 (dotted) of time to first token, "
                  "time per output token and end-to-end latency against the offered request rate; solid: continuous "
                  "batching (or CoE serving), dashed: static batching.")


def throughput_vs_ttft(curves: Curves) -> Optional[Figure]:
    if not any(len(v) >= 2 for v in curves.values()):
        return None
    fig = new_figure(7.5, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    for (plat, mode), pts in curves.items():
        _line(ax, [p.get("ttft.p99_s", np.nan) for p in pts], [p.get("requests_per_s", np.nan) for p in pts],
              plat, mode, f"{plat} {mode}")
    ax.set_xscale("log")
    style_axes(ax, "p99 time to first token (s)", "throughput (requests/s)")
    ax.legend(fontsize=7)
    return finish(fig, "serve_throughput_vs_ttft", "Throughput against p99 TTFT",
                  "Each point is one offered load; at equal p99 TTFT the higher curve serves more requests per second.")


def ttft_cdf(samples: Mapping[tuple[str, str], Sequence[float]]) -> Optional[Figure]:
    if not samples:
        return None
    fig = new_figure(7.5, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    for (plat, mode), v in samples.items():
        x = np.sort(np.asarray(v, float))
        if len(x):
            ax.step(x, np.arange(1, len(x) + 1) / len(x), STYLE.get(mode, "-"), where="post",
                    color=platform_color(plat), label=f"{plat} {mode}")
    ax.set_xscale("log")
    style_axes(ax, "time to first token (s)", "fraction of requests")
    ax.legend(fontsize=7)
    return finish(fig, "serve_ttft_cdf", "CDF of time to first token",
                  "Measured requests of the workload's main load point.")


def occupancy(series: Mapping[tuple[str, str], Sequence[Mapping[str, float]]]) -> Optional[Figure]:
    if not series:
        return None
    fig = new_figure(11.0, 4.0)
    for i, (key, label) in enumerate((("kv_occupancy", "KV-cache blocks in use (fraction)"),
                                      ("queue", "requests waiting"))):
        ax = fig.add_subplot(1, 2, i + 1)
        for (plat, mode), pts in series.items():
            ax.plot([p["t_s"] for p in pts], [p[key] for p in pts], STYLE.get(mode, "-"), color=platform_color(plat),
                    linewidth=1, label=f"{plat} {mode}")
        style_axes(ax, "time (s)", label)
    fig.axes[0].legend(fontsize=7)
    return finish(fig, "serve_kv_occupancy", "KV-cache occupancy and queue length over time",
                  "At the workload's main load point, sampled at scheduling events.")
