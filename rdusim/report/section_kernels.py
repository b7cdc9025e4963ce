"""The kernels section, for any run whose records hold kernel rows: a roofline
per platform with every kernel placed, and PCU / PMU / HBM utilisation per kernel."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from rdusim.report import plots_kernels
from rdusim.report.document import Section, Table
from rdusim.report.kernels import kernel_points, utilisation_rows


def kernel_table(rows: Sequence[tuple]) -> Optional[Table]:
    if not rows:
        return None
    body = tuple((r[0], r[1], *(None if u is None else 100 * u for u in r[2:5])) for r in rows)
    return Table("kernel_utilisation", "Utilisation per kernel",
                 ("kernel (platform/benchmark/mode/kernel)", "time (s)", "PCU (%)", "PMU (%)", "HBM bandwidth (%)"),
                 body, collapsed=len(body) > 40)


def rooflines(records: Sequence[Mapping[str, Any]], archs: Mapping[str, Any],
              order: list[str]) -> tuple[list, list[str]]:
    points, no_flops, skipped = kernel_points(records)
    figures, notes = [], []
    if no_flops:
        notes.append(f"{no_flops} record(s) do no arithmetic (copies, collectives, host work) and are not on a "
                     "roofline.")
    if skipped:
        notes.append(f"{skipped} kernel record(s) lack a time or bytes/intensity and are not on a roofline.")
    if not points:
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
        fig, note = plots_kernels.roofline(plat, archs[plat], mine)
        if fig is not None:
            figures.append(fig)
        if note:
            notes.append(note)
    return figures, notes


def build(records: Sequence[Mapping[str, Any]], archs: Mapping[str, Any], order: list[str]) -> Optional[Section]:
    figures, notes = rooflines(records, archs, order)
    util_rows = utilisation_rows(records)
    kfig = plots_kernels.kernel_utilisation(util_rows)
    if kfig is not None:
        figures.append(kfig)
    table = kernel_table(util_rows)
    if not figures and table is None:
        return None
    if kfig is None:
        notes.append("No per-kernel utilisation: no record carries pcu_util, pmu_util or hbm_bw_util.")
    return Section("Kernels", "Every kernel of the run on the roofline of its platform, and how busy it kept "
                   "the compute units, on-chip memories and HBM.", (table,) if table else (), tuple(figures),
                   tuple(notes))
