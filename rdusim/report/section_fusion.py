"""The fusion section: times and speedups per benchmark and mode, utilisation,
rooflines per platform from the kernel records, per-kernel utilisation."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from rdusim.report import plots_fusion
from rdusim.report.document import Section, Table
from rdusim.report.kernels import kernel_points, utilisation_rows
from rdusim.report.keys import FUSION_MODES, FusionView


def times_table(v: FusionView) -> Table:
    rows = []
    for b in v.benchmarks:
        t = [v.modes.get((b, m), {}).get("time_s") for m in FUSION_MODES]
        k = [v.modes.get((b, m), {}).get("kernels") for m in FUSION_MODES]
        s = v.speedups.get(b, {})
        rows.append((b, *t, *k, plots_fusion.speedup_of(v, b, "fused_so"), plots_fusion.speedup_of(v, b, "fused_ho"),
                     s.get("fused_ho_vs_fused_so")))
    return Table("fusion_speedups", "Time, kernels and speedup per benchmark (paper Figure 6)",
                 ("benchmark", "unfused (s)", "fused + SO (s)", "fused + HO (s)", "unfused kernels",
                  "fused + SO kernels", "fused + HO kernels", "SO vs unfused (x)", "HO vs unfused (x)",
                  "HO vs SO (x)"), tuple(rows))


def utilisation_table(v: FusionView) -> Optional[Table]:
    rows = []
    for b in v.benchmarks:
        for m in FUSION_MODES:
            d = v.modes.get((b, m))
            if d:
                rows.append((b, m, *(None if d.get(k) is None else 100 * d[k]
                                     for k in ("pcu_util", "pmu_util", "hbm_bw_util")), d.get("oi_flops_per_byte")))
    if not rows:
        return None
    return Table("fusion_utilisation", "Utilisation and operational intensity per benchmark and mode",
                 ("benchmark", "mode", "PCU (%)", "PMU (%)", "HBM bandwidth (%)", "FLOP/byte"), tuple(rows))


def kernel_table(rows: Sequence[tuple]) -> Optional[Table]:
    if not rows:
        return None
    body = tuple((r[0], r[1], *(None if u is None else 100 * u for u in r[2:])) for r in rows)
    return Table("kernel_utilisation", "Utilisation per kernel",
                 ("kernel (benchmark/mode/kernel)", "time (s)", "PCU (%)", "PMU (%)", "HBM bandwidth (%)"), body)


def rooflines(records: Sequence[Mapping[str, Any]], archs: Mapping[str, Any],
              order: list[str]) -> tuple[list, list[str]]:
    points, skipped = kernel_points(records)
    figures, notes = [], []
    if skipped:
        notes.append(f"{skipped} kernel record(s) lack FLOPs, a time, or bytes/intensity and are not on a roofline.")
    if not points:
        notes.append("No rooflines: the results have no kernel records with FLOPs, bytes and time.")
        return figures, notes
    if not archs:
        notes.append("No rooflines: the results carry no arch specs to take peaks and bandwidths from.")
        return figures, notes
    names = [p for p in order if p in archs] + [p for p in archs if p not in order]
    unnamed = [p for p in points if p.platform is None]
    if unnamed and len(names) > 1:
        notes.append(f"{len(unnamed)} kernel record(s) name no platform while the run has several; not placed.")
    for plat in names:
        mine = [p for p in points if p.platform == plat or (p.platform is None and len(names) == 1)]
        if not mine:
            continue
        fig, note = plots_fusion.roofline(plat, archs[plat], mine)
        if fig is not None:
            figures.append(fig)
        if note:
            notes.append(note)
    return figures, notes


def build(v: FusionView, records: Sequence[Mapping[str, Any]], archs: Mapping[str, Any],
          order: list[str]) -> Optional[Section]:
    if v.empty:
        return None
    tables = [times_table(v)]
    util_rows = utilisation_rows(records)
    tables += [t for t in (utilisation_table(v), kernel_table(util_rows)) if t is not None]
    figures, notes = [], []
    for fig in (plots_fusion.speedups(v), plots_fusion.utilisation(v)):
        if fig is not None:
            figures.append(fig)
    roof_figs, roof_notes = rooflines(records, archs, order)
    figures += roof_figs
    notes += roof_notes
    kfig = plots_fusion.kernel_utilisation(util_rows)
    if kfig is not None:
        figures.append(kfig)
    else:
        notes.append("No per-kernel utilisation: no record carries pcu_util, pmu_util or hbm_bw_util.")
    return Section("Operator fusion and kernel launch", "Unfused, fused with software-orchestrated launch "
                   "(SO) and fused with hardware-orchestrated launch (HO), per benchmark.",
                   tuple(tables), tuple(figures), tuple(notes))
