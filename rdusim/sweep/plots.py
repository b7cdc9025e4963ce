"""Plots of a sweep, drawn from the stored table (never re-simulated): PNG + CSV each.

- line: a metric against one swept key, a line per value of a second (``by``); with no
  ``by``, a line per metric matching the ``metric`` glob.
- heatmap: a metric over two swept keys (x: columns, by: rows).

Swept keys not on the plot are held at ``where`` values, by default their first value.
Points without the metric (an error, or an OOM platform) are gaps.
The plots come from the sweep file's ``plots:`` list; without one, every chosen metric
(at most ``MAX_DEFAULT``) against the first key, by the second, and a heat map over both.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import math
import re
from pathlib import Path
from typing import Any, Optional

from rdusim.results import atomic_write_text
from rdusim.sweep.point import PointRow
from rdusim.sweep.spec import PlotKind, PlotSpec
from rdusim.sweep.store import SweepStore

MAX_DEFAULT = 12


def render_sweep(directory: str | Path, out: Optional[str | Path] = None) -> list[Path]:
    """Draw every plot of the sweep in ``directory`` into ``out`` (default: the same folder)."""
    with SweepStore.open(directory, lock=False) as store:
        definition, rows = store.definition(), store.rows()
    out_dir = Path(out) if out else Path(directory)
    axes = {k: list(v) for k, v in definition["identity"]["axes"]}
    specs = [_plot_from_plain(p) for p in definition.get("plots", [])] or default_plots(list(axes), rows)
    paths: list[Path] = []
    for spec in specs:
        metrics = sorted({k for r in rows for k in r.metrics if fnmatch.fnmatchcase(k, spec.metric)})
        if spec.kind == PlotKind.LINE and spec.by is None:
            groups = [metrics] if metrics else []
        else:
            groups = [[m] for m in metrics]
        for group in groups:
            draw = _heatmap if spec.kind == PlotKind.HEATMAP else _line
            paths += draw(out_dir, len(paths) // 2, spec, group, axes, rows)
    from rdusim.report.render import write_report
    from rdusim.sweep.page import sweep_report

    paths.append(write_report(sweep_report(definition, rows, paths), out_dir))   # index.html
    return paths


def default_plots(keys: list[str], rows: list[PointRow]) -> list[PlotSpec]:
    metrics = sorted({k for r in rows for k in r.metrics if not k.endswith(".oom")})[:MAX_DEFAULT]
    by = keys[1] if len(keys) > 1 else None
    specs = [PlotSpec(metric=m, x=keys[0], by=by) for m in metrics]
    if by is not None:
        specs += [PlotSpec(metric=m, x=keys[0], by=by, kind=PlotKind.HEATMAP) for m in metrics]
    return specs


def _plot_from_plain(p: dict) -> PlotSpec:
    return PlotSpec(metric=p["metric"], x=p["x"], by=p.get("by"), kind=PlotKind(p.get("kind", "line")),
                    logx=bool(p.get("logx")), logy=bool(p.get("logy")), where=dict(p.get("where") or {}))


def _held(spec: PlotSpec, axes: dict[str, list]) -> dict[str, Any]:
    """Values of the swept keys that are not on the plot."""
    shown = {spec.x, spec.by}
    return {k: spec.where.get(k, vals[0]) for k, vals in axes.items() if k not in shown}


def _value(rows: list[PointRow], held: dict, metric: str, **at: Any) -> float:
    for r in rows:
        if all(r.params.get(k) == v for k, v in {**held, **at}.items()):
            v = r.metrics.get(metric)
            return float(v) if isinstance(v, (int, float)) else math.nan
    return math.nan


def _title(metric: str, held: dict) -> str:
    fixed = ", ".join(f"{_short(k)}={_fmt(v)}" for k, v in held.items())
    return metric + (f"\n({fixed})" if fixed else "")


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _short(key: str) -> str:
    return key.rsplit(".", 2)[-2] + "." + key.rsplit(".", 1)[-1] if key.count(".") >= 2 else key


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80]


def _xs(values: list) -> tuple[list, bool]:
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    return (values if numeric else list(range(len(values)))), numeric


def _line(out_dir: Path, n: int, spec: PlotSpec, metrics: list[str], axes, rows) -> list[Path]:
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    held = _held(spec, axes)
    xvals = axes[spec.x]
    xs, numeric = _xs(xvals)
    if spec.by is not None:
        series = {f"{_short(spec.by)}={_fmt(b)}": [_value(rows, held, metrics[0], **{spec.x: x, spec.by: b})
                                             for x in xvals] for b in axes[spec.by]}
        ylabel, title = metrics[0], _title(metrics[0], held)
    else:
        series = {m: [_value(rows, held, m, **{spec.x: x}) for x in xvals] for m in metrics}
        ylabel, title = spec.metric, _title(spec.metric, held)
    fig = Figure(figsize=(7, 4.5), dpi=110)
    ax = fig.subplots()
    for label, ys in series.items():
        if not all(math.isnan(y) for y in ys):      # a series with no value at all (e.g. OOM) stays in the CSV only
            ax.plot(xs, ys, marker="o", label=label)
    if spec.logx and numeric:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    if not numeric or spec.logx:
        ax.set_xticks(xs, [_fmt(v) for v in xvals])
    if spec.logy:
        ax.set_yscale("log")
    ax.set_xlabel(spec.x)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    stem = out_dir / f"sweep_{n:02d}_{_slug(metrics[0] if spec.by else spec.metric)}_vs_{_slug(_short(spec.x))}"
    return _save(fig, stem, [spec.x, *series], [[x, *(s[i] for s in series.values())] for i, x in enumerate(xvals)])


def _heatmap(out_dir: Path, n: int, spec: PlotSpec, metrics: list[str], axes, rows) -> list[Path]:
    from matplotlib.figure import Figure

    metric, held = metrics[0], _held(spec, axes)
    xvals, yvals = axes[spec.x], axes[spec.by]
    grid = [[_value(rows, held, metric, **{spec.x: x, spec.by: y}) for x in xvals] for y in yvals]
    fig = Figure(figsize=(7, 4.5), dpi=110)
    ax = fig.subplots()
    im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(xvals)), [_fmt(v) for v in xvals], rotation=30, fontsize=7)
    ax.set_yticks(range(len(yvals)), [_fmt(v) for v in yvals], fontsize=7)
    finite = [v for row in grid for v in row if not math.isnan(v)]
    mid = (min(finite) + max(finite)) / 2 if finite else 0.0
    for yi, row in enumerate(grid):
        for xi, v in enumerate(row):
            ax.text(xi, yi, "—" if math.isnan(v) else f"{v:.3g}", ha="center", va="center", fontsize=6,
                    color="k" if not math.isnan(v) and v > mid else "w")
    fig.colorbar(im, ax=ax, label=metric)
    ax.set_xlabel(spec.x)
    ax.set_ylabel(spec.by)
    ax.set_title(_title(metric, held), fontsize=9)
    fig.tight_layout()
    stem = out_dir / f"sweep_{n:02d}_{_slug(metric)}_heatmap"
    return _save(fig, stem, [f"{spec.by} \\ {spec.x}", *map(str, xvals)], [[y, *row] for y, row in zip(yvals, grid)])


def _save(fig, stem: Path, header: list, table: list[list]) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    png = stem.parent / f"{stem.name}.png"
    fig.savefig(png)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in table:
        w.writerow(["" if isinstance(v, float) and math.isnan(v) else v for v in row])
    return [png, atomic_write_text(stem.parent / f"{stem.name}.csv", buf.getvalue())]
