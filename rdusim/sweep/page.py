"""The sweep's report page: ``index.html`` and report.md with every plot (``figures/``, its
numbers in ``tables/``) and the table of points. Built from the stored table, never re-simulated."""

from __future__ import annotations

from typing import Any, Sequence

from rdusim.report.document import Figure, Report, Section, Table
from rdusim.sweep.point import PointRow

MAX_ROWS_SHOWN = 500


def sweep_report(definition: dict[str, Any], rows: list[PointRow], figures: Sequence[Figure]) -> Report:
    keys = list(definition.get("keys") or [k for k, _ in definition["identity"]["axes"]])
    metric_keys = sorted({k for r in rows for k in r.metrics})
    table = Table("sweep_points", "Points", ("index", *keys, "seed", "status", *metric_keys, "error"),
                  tuple((r.index, *(_cell(r.params.get(k)) for k in keys), r.seed, r.status.value,
                         *(r.metrics.get(k) for k in metric_keys), r.error) for r in rows),
                  note="One row per finished point (sweep.sqlite); the full table is also in sweep.csv.",
                  max_shown=MAX_ROWS_SHOWN)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status.value] = counts.get(r.status.value, 0) + 1
    failed = [f"point {r.index}: {r.status.value}: {r.error}" for r in rows if r.error][:20]
    name = definition.get("name", "sweep")
    sections = (
        Section("Plots", "Drawn from the stored table.", (), tuple(figures),
                () if figures else ("No metric to plot (no finished point has a number).",)),
        Section("Table", ", ".join(f"{n} {s}" for s, n in counts.items()) or "no points", (table,), (),
                tuple(failed)),
    )
    stamp = (("sweep", name), ("workload", str(definition.get("workload_file", ""))),
             ("grid", ", ".join(keys)), ("points", str(len(rows))),
             ("written by", str(definition.get("rdusim_version", ""))))
    return Report(f"rdusim sweep: {name}", stamp, sections)


def _cell(v: Any) -> Any:
    return v if isinstance(v, (int, float, str)) or v is None else str(v)
