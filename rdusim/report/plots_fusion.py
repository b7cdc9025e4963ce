"""Fusion figures: speedup over unfused per benchmark (paper Figure 6), a roofline
per platform with every kernel placed, and PCU / PMU / HBM utilisation."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np
from matplotlib.lines import Line2D

from rdusim.report.colors import MODE_LABELS, mode_color, platform_color
from rdusim.report.document import Figure
from rdusim.report.figures import finish, new_figure, style_axes
from rdusim.report.kernels import KernelPoint, roofs
from rdusim.report.keys import FUSION_MODES, FusionView

TITLE_SPEEDUP = "Fusion speedup over unfused execution per benchmark"
TITLE_UTIL = "PCU, PMU and HBM-bandwidth utilisation per benchmark"
TITLE_KERNEL_UTIL = "Utilisation of the longest kernels"


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
    benches = [b for b in v.benchmarks if any(speedup_of(v, b, m) is not None for m in FUSION_MODES[1:])]
    if not benches:
        return None
    fig = new_figure(max(7.0, 0.75 * len(benches) + 2), 4.8)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(FUSION_MODES)
    for j, mode in enumerate(FUSION_MODES):
        xs = np.arange(len(benches)) + (j - 1) * width
        ys = [speedup_of(v, b, mode) for b in benches]
        ys = [np.nan if y is None else y for y in ys]
        ax.bar(xs, ys, width, color=mode_color(mode), label=MODE_LABELS[mode], edgecolor="black", linewidth=0.4)
        for x, y in zip(xs, ys):
            if mode != "unfused" and np.isfinite(y):
                ax.annotate(f"{y:.1f}", (x, y), ha="center", va="bottom", fontsize=6)
    ax.set_yscale("log")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(benches)))
    ax.set_xticklabels(benches, rotation=35, ha="right", fontsize=8)
    style_axes(ax, "benchmark", "speedup over unfused (x, log scale)")
    ax.legend(fontsize=8)
    return finish(fig, "fusion_speedup", TITLE_SPEEDUP,
                  "Unfused = 1. Fused + SO: fused kernels launched by host software; fused + HO: the same "
                  "kernels launched by the AGCU hardware schedule (paper Figure 6).")


def roofline(platform: str, arch: Mapping[str, Any], points: Sequence[KernelPoint]) -> tuple[Optional[Figure], str]:
    """One roofline; returns (figure or None, a note for the report or '')."""
    r = roofs(arch)
    if not r:
        return None, f"No roofline for {platform}: its arch spec in the results lacks peak FLOP/s or HBM bandwidth."
    if not points:
        return None, f"No roofline for {platform}: no kernel records with FLOPs, bytes and time."
    peak = r["peak_flops_per_s"]
    bws = {k: v for k, v in r.items() if k != "peak_flops_per_s"}
    ois = np.array([p.oi for p in points])
    lo = min(ois.min(), min(peak / b for b in bws.values())) / 4
    hi = max(ois.max(), max(peak / b for b in bws.values())) * 4
    x = np.logspace(np.log10(lo), np.log10(hi), 200)
    fig = new_figure(7.5, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    for (name, bw), style in zip(bws.items(), ("-", "--", ":")):
        ax.plot(x, np.minimum(peak, bw * x), style, color="black", linewidth=1.2,
                label=f"{name} {bw / 1e9:.0f} GB/s, ridge {peak / bw:.0f} FLOP/B")
    ax.axhline(peak, color="grey", linewidth=0.6)
    groups: dict[str, list[KernelPoint]] = {}
    for p in points:
        groups.setdefault(p.mode or "kernel", []).append(p)
    for mode, pts in groups.items():
        colour = mode_color(mode) if mode in MODE_LABELS else platform_color(platform)
        ax.scatter([p.oi for p in pts], [p.achieved for p in pts], s=14, color=colour, alpha=0.75,
                   edgecolor="black", linewidth=0.3, label=f"{MODE_LABELS.get(mode, mode)} ({len(pts)} kernels)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    style_axes(ax, "operational intensity (FLOP/byte of off-chip traffic)", "achieved FLOP/s per socket/GPU")
    ax.legend(fontsize=7, loc="lower right")
    above = sum(p.achieved > peak * 1.01 for p in points)
    note = (f"{above} kernel(s) of {platform} sit above the compute roof: their records are probably "
            f"whole-node numbers without a 'devices' field.") if above else ""
    fig_ = finish(fig, f"roofline_{platform}", title_roofline(platform),
                  f"Peak {peak / 1e12:.0f} TFLOP/s per socket/GPU from the arch spec; each dot is a kernel "
                  "placed by its operational intensity and achieved FLOP rate.")
    return fig_, note


def utilisation(v: FusionView) -> Optional[Figure]:
    names = (("pcu_util", "PCU"), ("pmu_util", "PMU"), ("hbm_bw_util", "HBM bandwidth"))
    present = [(k, lbl) for k, lbl in names if any(d.get(k) is not None for d in v.modes.values())]
    if not present:
        return None
    benches = v.benchmarks
    fig = new_figure(max(7.0, 0.7 * len(benches) + 2), 2.6 * len(present) + 0.8)
    width = 0.8 / len(FUSION_MODES)
    for i, (key, lbl) in enumerate(present):
        ax = fig.add_subplot(len(present), 1, i + 1)
        for j, mode in enumerate(FUSION_MODES):
            ys = [v.modes.get((b, mode), {}).get(key) for b in benches]
            ax.bar(np.arange(len(benches)) + (j - 1) * width, [np.nan if y is None else 100 * y for y in ys],
                   width, color=mode_color(mode), label=MODE_LABELS[mode], edgecolor="black", linewidth=0.3)
        ax.set_ylim(0, 105)
        ax.set_xticks(range(len(benches)))
        last = i == len(present) - 1
        ax.set_xticklabels(benches if last else [], rotation=35, ha="right", fontsize=8)
        style_axes(ax, "benchmark" if last else "", f"{lbl} (%)")
        if i == 0:
            ax.legend(fontsize=7, ncol=3)
    return finish(fig, "fusion_utilisation", TITLE_UTIL,
                  "Time-averaged busy fraction of PCUs and PMUs and achieved fraction of peak HBM bandwidth.")


def kernel_utilisation(rows: Sequence[tuple], limit: int = 30) -> Optional[Figure]:
    """Horizontal bars for the ``limit`` longest kernels: (label, time_s, pcu, pmu, hbm)."""
    if not rows:
        return None
    rows = sorted(rows, key=lambda r: -(r[1] or 0.0))[:limit]
    fig = new_figure(8.5, 1.2 + 0.28 * len(rows))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(rows))
    h = 0.27
    for j, (name, colour) in enumerate((("PCU", "#4e79a7"), ("PMU", "#59a14f"), ("HBM bandwidth", "#e8710a"))):
        vals = [np.nan if r[2 + j] is None else 100 * r[2 + j] for r in rows]
        ax.barh(y + (j - 1) * h, vals, h, color=colour, label=name)
    ax.set_yticks(y)
    ax.set_yticklabels([r[0] for r in rows], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlim(0, 105)
    style_axes(ax, "utilisation (%)", "kernel (benchmark/mode/kernel)")
    ax.legend(handles=[Line2D([], [], color=c, linewidth=6, label=n)
                       for n, c in (("PCU", "#4e79a7"), ("PMU", "#59a14f"), ("HBM bandwidth", "#e8710a"))],
              fontsize=7, loc="lower right")
    return finish(fig, "kernel_utilisation", TITLE_KERNEL_UTIL,
                  f"The {len(rows)} longest kernels; every kernel is in the per-kernel CSV.")
