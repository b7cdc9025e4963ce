"""render_report(result, out_dir): the report of one finished run.

Writes, in ``out_dir``: ``index.html`` (self-contained, plots embedded as
base64 PNG), ``report.md`` (with ``figures/*.png``), and ``tables/<name>.csv``
for every table and for every figure that carries its numbers. Sections follow
the metric keys found (coe, fusion, model), then validation, machines, workload
and all data. Reads the RunResult only: nothing is simulated here.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import yaml

from rdusim import __version__
from rdusim.errors import InputError
from rdusim.report import section_coe, section_finetune, section_fusion, section_kernels, section_model, section_serve
from rdusim.report.document import Report, Section, Table
from rdusim.report.html import render_html
from rdusim.report.keys import coe_view, fusion_views, model_view, platform_order
from rdusim.report.markdown import render_markdown
from rdusim.report.tables import arch_table, metrics_table, records_table, validation_table
from rdusim.results import RunResult, atomic_write_text, plain
from rdusim.validate import applicable_references
from rdusim.report.oom import oom_reasons
from rdusim import outdir

RESULTS = "results.json"


def check_result(result: RunResult, file: str = RESULTS) -> None:
    """Fail with a clear InputError on results a report cannot be drawn from."""
    if not isinstance(result.metrics, Mapping):
        raise InputError(file, "metrics", "a mapping of dotted keys to numbers", type(result.metrics).__name__)
    for k, v in result.metrics.items():
        if not isinstance(k, str) or not (v is None or isinstance(v, (int, float))):
            raise InputError(file, f"metrics.{k}", "a number (or null)", v)
    if not isinstance(result.records, (list, tuple)) or any(not isinstance(r, Mapping) for r in result.records):
        raise InputError(file, "records", "a list of flat objects", "something else")
    if not isinstance(result.archs, Mapping) or any(not isinstance(a, Mapping) for a in result.archs.values()):
        raise InputError(file, "archs", "a mapping of platform name to arch spec", "something else")
    if not isinstance(result.resolved, Mapping):
        raise InputError(file, "workload.resolved", "a mapping (the workload as run)", type(result.resolved).__name__)


def _date(date: Optional[datetime]) -> str:
    if date is None:
        epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
        date = (datetime.fromtimestamp(int(epoch), timezone.utc) if epoch.isdigit()
                else datetime.now(timezone.utc))
    return date.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _validation_section(result: RunResult, rows: Optional[Sequence[Mapping[str, Any]]]) -> Section:
    notes: list[str] = []
    if rows is None:
        extra = result.extra.get("validation") if isinstance(result.extra, Mapping) else None
        if isinstance(extra, (list, tuple)):
            rows = [r for r in extra if isinstance(r, Mapping)]
        else:
            try:
                found, near = applicable_references(result)
                rows = [r.as_dict() for r in found]
            except Exception as exc:   # broken reference files must not break a report
                rows, near = [], []
                notes.append(f"References could not be read: {type(exc).__name__}: {exc}")
            if near:
                notes.append(f"{len(near)} reference(s) name workload {result.workload_name} with other settings or "
                             "arch specs than this run (or the arch files changed since it ran), so they are not "
                             "compared here: " + ", ".join(near[:8]) + (", ..." if len(near) > 8 else "") + ".")
    table = validation_table(rows)
    if table is None:
        notes.append("No reference in references/ describes exactly this run (same workload, settings and "
                     "machines); `rdusim validate` runs every reference.")
    return Section("Validation against published numbers", "", (table,) if table else (), (), tuple(notes))


def _oom_section(metrics: Mapping[str, Any], extra: Mapping[str, Any]) -> Optional[Section]:
    """Every out-of-memory row with its reason (rows sharing a reason together)."""
    reasons = oom_reasons(metrics, extra)
    if not reasons:
        return None
    rows = tuple((reason, len(keys), ", ".join(keys)) for reason, keys in reasons.items())
    table = Table("out_of_memory", "Out of memory: reasons", ("reason", "rows", "result rows (metric prefixes)"), rows)
    return Section("Out of memory", "Runs that do not fit the simulated machine are results (.oom = 1), "
                   "not failures; this is why each one did not fit.", (table,))


def build_report(result: RunResult, *, date: Optional[datetime] = None,
                 validation: Optional[Sequence[Mapping[str, Any]]] = None) -> Report:
    """The report as data (tables with values, figures as PNG bytes)."""
    check_result(result)
    order = platform_order(result.resolved, result.archs)
    metrics = dict(result.metrics)
    builders = {
        "coe": lambda: section_coe.build(coe_view(metrics, order)),
        "fusion": lambda: section_fusion.build(fusion_views(metrics, order)),
        "model": lambda: section_model.build(model_view(metrics, order)),
        "serve": lambda: section_serve.build(metrics, result.records, order),
        "finetune": lambda: section_finetune.build(metrics, result.extra),
    }
    kinds = [result.kind] + [k for k in builders if k != result.kind]
    sections = [s for k in kinds if k in builders and (s := builders[k]()) is not None]
    kernels = section_kernels.build(result.records, result.archs, order)
    if kernels is not None:
        sections.append(kernels)
    if not sections:
        sections.append(Section("Results", "", (), (), (f"No {result.kind} metrics with the key shapes this "
                                                         "report knows; all metrics are listed below.",)))
    oom = _oom_section(metrics, result.extra)
    if oom is not None:
        sections.append(oom)
    sections.append(_validation_section(result, validation))
    archs = [arch_table(p, a) for p, a in result.archs.items()]
    sections.append(Section("Machines", "Resolved arch specs (after --set), with the source of every number.",
                            tuple(archs), (), () if archs else ("The results carry no arch specs.",)))
    sections.append(Section("Workload as run", "", (), (), (),
                            yaml.safe_dump(plain(result.resolved), sort_keys=False, default_flow_style=False)))
    data: list[Table] = [metrics_table(metrics)]
    rec = records_table(result.records)
    if rec is not None:
        data.append(rec)
    sections.append(Section("All data", "Every metric and record of results.json.", tuple(data)))
    platforms = ", ".join(order) or "-"
    stamp = (("workload", result.workload_name), ("kind", result.kind), ("platforms", platforms),
             ("seed", str(result.seed)), ("results written by", f"rdusim {result.version}"),
             ("rendered by", f"rdusim {__version__}"), ("date", _date(date)))
    return Report(f"rdusim report: {result.workload_name}", stamp, tuple(sections))


def _csv(table: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(table.columns)
    for row in table.rows:
        w.writerow(["" if v is None else repr(v) if isinstance(v, float) else v for v in row])
    return buf.getvalue()


def _write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _fresh_dir(path: Path, pattern: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob(pattern):     # stale output of an earlier render
        old.unlink()
    return path


def write_report(report: Report, out_dir: str | Path) -> Path:
    """Write the report's files into ``out_dir`` (replacing an earlier report's) and list
    them in the folder's manifest; returns index.html."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = _fresh_dir(out / "figures", "*.png")
    tabs = _fresh_dir(out / "tables", "*.csv")
    written = [figs / f"{f.name}.png" for f in report.figures]
    for f, path in zip(report.figures, written):
        _write_bytes(path, f.png)
    for t in report.tables:
        written.append(atomic_write_text(tabs / f"{t.name}.csv", _csv(t)))
    for f in report.figures:
        if f.data_csv:           # a plot's numbers beside the tables (sweep plots)
            written.append(atomic_write_text(tabs / f"{f.name}.csv", f.data_csv))
    written.append(atomic_write_text(out / "report.md", render_markdown(report)))
    index = atomic_write_text(out / "index.html", render_html(report))
    for path in written + [index]:
        path.chmod(0o644)            # temp files are created private; a report is for reading
    outdir.record(out, written + [index], replace=outdir.REPORT_FILES)
    return index


def render_report(result: RunResult, out_dir: str | Path, *, date: Optional[datetime] = None) -> Path:
    """Render the report of ``result`` into ``out_dir``; returns the path of index.html."""
    return write_report(build_report(result, date=date), out_dir)
