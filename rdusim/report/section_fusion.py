"""The fusion section: times and speedups per benchmark and mode, and utilisation,
per platform (the kernels section adds rooflines and per-kernel utilisation)."""

from __future__ import annotations

from typing import Optional, Sequence

from rdusim.report import plots_fusion
from rdusim.report.document import Section, Table
from rdusim.report.colors import MODE_LABELS
from rdusim.report.keys import FusionView


def _stem(name: str, v: FusionView) -> str:
    return name if v.platform is None else f"{name}_{v.platform}"


def _on(title: str, v: FusionView) -> str:
    return title if v.platform is None else f"{title}, {v.platform}"


def times_table(v: FusionView) -> Table:
    modes = v.mode_list()
    faster = [m for m in modes if m != "unfused"]
    ho_so = any("fused_ho_vs_fused_so" in s for s in v.speedups.values())
    rows = []
    for b in v.benchmarks:
        t = ["OOM" if v.modes.get((b, m), {}).get("oom") else v.modes.get((b, m), {}).get("time_s") for m in modes]
        k = [v.modes.get((b, m), {}).get("kernels") for m in modes]
        sp = [plots_fusion.speedup_of(v, b, m) for m in faster]
        rows.append((b, *t, *k, *sp) + ((v.speedups.get(b, {}).get("fused_ho_vs_fused_so"),) if ho_so else ()))
    label = lambda m: MODE_LABELS.get(m, m)   # noqa: E731
    cols = ("benchmark", *(f"{label(m)} (s)" for m in modes), *(f"{label(m)} kernels" for m in modes),
            *(f"{label(m)} vs unfused (x)" for m in faster)) + (("HO vs SO (x)",) if ho_so else ())
    return Table(_stem("fusion_speedups", v), _on("Time, kernels and speedup per benchmark (paper Figure 6)", v),
                 cols, tuple(rows))


def utilisation_table(v: FusionView) -> Optional[Table]:
    rows = []
    for b in v.benchmarks:
        for m in v.mode_list():
            d = v.modes.get((b, m))
            if d and any(d.get(k) is not None for k in ("pcu_util", "pmu_util", "hbm_bw_util", "oi_flops_per_byte")):
                rows.append((b, m, *(None if d.get(k) is None else 100 * d[k]
                                     for k in ("pcu_util", "pmu_util", "hbm_bw_util")), d.get("oi_flops_per_byte")))
    if not rows:
        return None
    return Table(_stem("fusion_utilisation", v), _on("Utilisation and operational intensity per benchmark and mode", v),
                 ("benchmark", "mode", "PCU (%)", "PMU (%)", "HBM bandwidth (%)", "FLOP/byte"), tuple(rows))


def build(views: Sequence[FusionView]) -> Optional[Section]:
    """``views`` from keys.fusion_views: the unqualified one first, then one per platform.
    With platform views the unqualified one (a copy of the first RDU's) is not repeated."""
    qualified = [v for v in views[1:] if not v.empty]
    used = qualified or [v for v in views[:1] if not v.empty]
    if not used:
        return None
    tables, figures, notes = [], [], []
    for v in used:
        tables.append(times_table(v))
        ut = utilisation_table(v)
        if ut is not None:
            tables.append(ut)
        for fig in (plots_fusion.speedups(v), plots_fusion.utilisation(v)):
            if fig is not None:
                figures.append(fig)
    return Section("Operator fusion and kernel launch", "Unfused, fused with software-orchestrated launch "
                   "(SO) and fused with hardware-orchestrated launch (HO), per benchmark"
                   + (" and platform: " + ", ".join(str(v.platform) for v in qualified) if qualified else "") + ".",
                   tuple(tables), tuple(figures), tuple(notes))
