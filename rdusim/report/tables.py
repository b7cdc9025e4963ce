"""Tables every report has: run stamp, arch specs with sources, validation,
all metrics, all records."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from rdusim.report.document import Table


def flatten(node: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in node.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out += flatten(v, key)
        else:
            out.append((key, v))
    return out


def arch_table(platform: str, arch: Mapping[str, Any]) -> Table:
    sources = arch.get("sources", {}) if isinstance(arch.get("sources"), Mapping) else {}
    spec = {k: v for k, v in arch.items() if k != "sources"}
    rows = tuple((k, v, sources.get(k, "")) for k, v in flatten(spec))
    return Table(f"arch_{platform}", f"Machine spec of {platform}", ("key", "value", "source"), rows,
                 "" if sources else "The results carry no sources for this spec.", max_shown=10_000, collapsed=True)


def metrics_table(metrics: Mapping[str, Any]) -> Table:
    rows = tuple((k, metrics[k]) for k in sorted(metrics))
    return Table("metrics", "All metrics", ("metric", "value"), rows, max_shown=500, collapsed=True)


def records_table(records: Sequence[Mapping[str, Any]]) -> Optional[Table]:
    rows = [r for r in records if isinstance(r, Mapping)]
    if not rows:
        return None
    cols: dict[str, None] = {}
    for r in rows:
        cols.update(dict.fromkeys(r))
    columns = tuple(cols)
    body = tuple(tuple(r.get(c) for c in columns) for r in rows)
    return Table("records", "All records", columns, body, max_shown=100, collapsed=True)


def validation_table(rows: Sequence[Mapping[str, Any]]) -> Optional[Table]:
    """Rows as written by rdusim.validate.ValidationRow.as_dict (tolerant of missing fields)."""
    if not rows:
        return None
    body = []
    for r in rows:
        err = r.get("error")
        tol = r.get("tolerance")
        band = r.get("range")
        published = f"{band[0]:.4g}-{band[1]:.4g}" if isinstance(band, (list, tuple)) and len(band) == 2 \
            else r.get("expected")
        body.append((r.get("id"), r.get("source"), r.get("role", "validation"), r.get("metric"),
                     published, r.get("simulated"),
                     None if err is None else 100 * err, None if tol is None else 100 * tol,
                     r.get("status") or ("PASS" if r.get("passed") else "FAIL"),
                     r.get("fit_group") or None, r.get("fit_parameters") if r.get("fit_group") else None,
                     r.get("dof"), r.get("note", "")))
    return Table("validation", "Simulated vs published",
                 ("id", "source", "role", "metric", "published", "simulated", "error (%)", "tolerance (±%)",
                  "result", "fit group", "fitted parameters", "dof", "note"), tuple(body),
                 "error = simulated / published - 1; a published range (low-high) is IN RANGE or OUT OF RANGE, "
                 "with no error. Calibration: a parameter was fitted to this number (fit group: the parameters "
                 "fitted together, dof: the group's points minus its parameters; 0 means the points are "
                 "reproduced by construction); validation: a prediction.")
