"""Fusion figures: speedup over unfused per benchmark (paper Figure 6) and
PCU / PMU / HBM utilisation per benchmark and mode."""

from __future__ import annotations

from typing import Optional

import numpy as np

from rdusim.report.colors import MODE_LABELS, mode_color
from rdusim.report.document import Figure
from rdusim.report.figures import finish, legend_outside, new_figure, style_axes
from rdusim.report.keys import FusionView

TITLE_SPEEDUP = "Fusion speedup over unfused execution per benchmark"
TITLE_UTIL = "PCU, PMU and HBM-bandwidth utilisation per benchmark"
TITLE_KERNEL_UTIL = "Utilisation of the longest kernels"


def _on(title: str, platform: Optional[str]) -> str:
    return title if platform is None else f"{title}, {platform}"


def _stem(name: str, platform: Optional[str]) -> str:
    return name if platform is None else f"{name}_{platform}"


def title_roofline(platform: str) -> str:
    return f"Roofline of one {platform} socket/GPU with every kernel"


def speedup_of(v: FusionView, bench: str, mode: str) -> Optional[float]:
    """Speedup of ``mode`` over unfused: the study's metric, else the ratio of its times."""
    if mode == "unfused":
        return 1.0 if (bench, "unfused") in v.modes or bench in v.speedups else None
    s = v.speedups.get(bench, {}).get(f"{mode}_vs_unfused")
    if s is not None:
        return s
    t0 = v.modes.get((bench, "unfused"), {}).get("time_s")
    t = v.modes.get((bench, mode), {}).get("time_s")
    return t0 / t if t0 and t else None


def speedups(v: FusionView) -> Optional[Figure]:
    modes = ["unfused"] + [m for m in v.mode_list() if m != "unfused"]
    benches = [b for b in v.benchmarks if any(speedup_of(v, b, m) is not None for m in modes[1:])]
    if not benches:
        return None
    fig = new_figure(max(7.0, 0.75 * len(benches) + 2), 4.8)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(modes)
    for j, mode in enumerate(modes):
        xs = np.arange(len(benches)) + (j - (len(modes) - 1) / 2) * width
        ys = [speedup_of(v, b, mode) for b in benches]
        ys = [np.nan if y is None else y for y in ys]
        ax.bar(xs, ys, width, color=mode_color(mode), label=MODE_LABELS.get(mode, mode), edgecolor="black",
               linewidth=0.4)
        for x, y in zip(xs, ys):
            if mode != "unfused" and np.isfinite(y):
                ax.annotate(f"{y:.1f}", (x, y), ha="center", va="bottom", fontsize=6)
    ax.set_yscale("log")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(benches)))
    ax.set_xticklabels(benches, rotation=35, ha="right", fontsize=8)
    style_axes(ax, "benchmark", "speedup over unfused (x, log scale)")
    legend_outside(ax, fontsize=8)
    return finish(fig, _stem("fusion_speedup", v.platform), _on(TITLE_SPEEDUP, v.platform),
                  "Unfused = 1. Fused + SO: fused kernels launched by host software; fused + HO: the same "
                  "kernels launched by the AGCU hardware schedule (paper Figure 6).")


def utilisation(v: FusionView) -> Optional[Figure]:
    names = (("pcu_util", "PCU"), ("pmu_util", "PMU"), ("hbm_bw_util", "HBM bandwidth"))
    present = [(k, lbl) for k, lbl in names if any(d.get(k) is not None for d in v.modes.values())]
    if not present:
        return None
    benches = v.benchmarks
    modes = v.mode_list()
    fig = new_figure(max(7.0, 0.7 * len(benches) + 2), 2.6 * len(present) + 0.8)
    width = 0.8 / len(modes)
    for i, (key, lbl) in enumerate(present):
        ax = fig.add_subplot(len(present), 1, i + 1)
        for j, mode in enumerate(modes):
            ys = [v.modes.get((b, mode), {}).get(key) for b in benches]
            ax.bar(np.arange(len(benches)) + (j - (len(modes) - 1) / 2) * width,
                   [np.nan if y is None else 100 * y for y in ys], width, color=mode_color(mode),
                   label=MODE_LABELS.get(mode, mode), edgecolor="black", linewidth=0.3)
        ax.set_ylim(0, 105)
        ax.set_xticks(range(len(benches)))
        last = i == len(present) - 1
        ax.set_xticklabels(benches if last else [], rotation=35, ha="right", fontsize=8)
        style_axes(ax, "benchmark" if last else "", f"{lbl} (%)")
        if i == 0:
            legend_outside(ax)
    return finish(fig, _stem("fusion_utilisation", v.platform), _on(TITLE_UTIL, v.platform),
                  "Time-averaged busy fraction of PCUs and PMUs and achieved fraction of peak HBM bandwidth.")
