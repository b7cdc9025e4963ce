"""Kernel figures: a roofline per platform with every kernel placed by operational
intensity and achieved FLOP rate, and the utilisation of the longest kernels."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np
from matplotlib.lines import Line2D

from rdusim.report.colors import MODE_LABELS, mode_color, platform_color
from rdusim.report.document import Figure
from rdusim.report.figures import finish, legend_outside, new_figure, style_axes
from rdusim.report.kernels import KernelPoint, roofs

TITLE_KERNEL_UTIL = "Utilisation of the longest kernel of each platform, benchmark and mode"
_MARKERS = {"unfused": "o", "fused": "D", "fused_so": "s", "fused_ho": "^", "prefill": "o", "decode": "^"}
_UTIL = (("PCU", "#4e79a7"), ("PMU", "#59a14f"), ("HBM bandwidth", "#e8710a"))


def device_word(arch: Mapping[str, Any]) -> str:
    return "socket" if arch.get("kind") == "rdu" or "socket" in arch else "GPU"


def title_roofline(platform: str, arch: Mapping[str, Any]) -> str:
    return f"Roofline of one {platform} {device_word(arch)} with every kernel"


def roofline(platform: str, arch: Mapping[str, Any], points: Sequence[KernelPoint]) -> tuple[Optional[Figure], str]:
    """One roofline; returns (figure or None, a note for the report or '')."""
    r = roofs(arch)
    if not r:
        return None, f"No roofline for {platform}: its arch spec in the results lacks peak FLOP/s or HBM bandwidth."
    if not points:
        return None, f"No roofline for {platform}: no kernel records with FLOPs, bytes and time."
    unit = device_word(arch)
    peak = r["peak_flops_per_s"]
    bws = {k: v for k, v in r.items() if k != "peak_flops_per_s"}
    ois = np.array([p.oi for p in points])
    lo = min(ois.min(), min(peak / b for b in bws.values())) / 4
    hi = max(ois.max(), max(peak / b for b in bws.values())) * 4
    x = np.logspace(np.log10(lo), np.log10(hi), 200)
    fig = new_figure(9.5, 5.0)
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
        ax.scatter([p.oi for p in pts], [p.achieved for p in pts], s=16, color=colour, alpha=0.6,
                   marker=_MARKERS.get(mode, "o"), edgecolor="black", linewidth=0.3,
                   label=f"{MODE_LABELS.get(mode, mode)} ({len(pts)} kernels)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    style_axes(ax, "operational intensity (FLOP/byte of off-chip traffic)", f"achieved FLOP/s per {unit}")
    legend_outside(ax)
    above = sum(p.achieved > peak * 1.01 for p in points)
    note = (f"{above} kernel(s) of {platform} sit above the compute roof: their records are probably "
            f"whole-node numbers without a 'devices' field.") if above else ""
    fig_ = finish(fig, f"roofline_{platform}", title_roofline(platform, arch),
                  f"Peak {peak / 1e12:.0f} TFLOP/s per {unit} from the arch spec; each mark is a kernel placed by "
                  "its operational intensity and achieved FLOP rate.")
    return fig_, note


def _short(text: str, width: int = 30) -> str:
    """Shorten the kernel name (the last part of the label), never the platform/benchmark/mode."""
    prefix, _, name = text.rpartition("/")
    if len(name) > width:
        name = name[: width // 2 - 1] + "..." + name[-(width // 2 - 2):]
    return f"{prefix}/{name}" if prefix else name


def kernel_utilisation(rows: Sequence[tuple], limit: int = 48) -> Optional[Figure]:
    """Bars for the longest kernel of each group; rows are kernels.utilisation_rows()."""
    if not rows:
        return None
    longest: dict[tuple, tuple] = {}
    for r in rows:
        if r[5] not in longest or (r[1] or 0.0) > (longest[r[5]][1] or 0.0):
            longest[r[5]] = r
    picked = list(longest.values())[:limit]
    fig = new_figure(11.0, 1.2 + 0.3 * len(picked))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(picked))
    h = 0.27
    for j, (name, colour) in enumerate(_UTIL):
        vals = [np.nan if r[2 + j] is None else 100 * r[2 + j] for r in picked]
        ax.barh(y + (j - 1) * h, vals, h, color=colour, label=name)
    ax.set_yticks(y)
    ax.set_yticklabels([_short(r[0]) for r in picked], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlim(0, 105)
    style_axes(ax, "utilisation (%)", "kernel (platform/benchmark/mode/kernel)")
    legend_outside(ax, [Line2D([], [], color=c, linewidth=6, label=n) for n, c in _UTIL])
    more = f" (first {limit} of {len(longest)} groups)" if len(longest) > limit else ""
    return finish(fig, "kernel_utilisation", TITLE_KERNEL_UTIL,
                  f"For each platform, benchmark and mode (or phase), the kernel that ran longest{more}; "
                  "every kernel is in the per-kernel table and CSV.")
