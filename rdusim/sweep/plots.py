"""Plots of a sweep, drawn from the stored table (never re-simulated).

- line: a metric against one swept key, a line per value of a second (``by``); with no
  ``by``, a line per metric matching the ``metric`` glob.
- heatmap: a metric over two swept keys (x: columns, by: rows).

Swept keys not on the plot are held at ``where`` values, by default their first value.
A point without the metric is a gap, or, when it ran out of simulated memory (its ``.oom``
flag for that metric's prefix, else the point's status), an X in a band at the top of the
plot (``OOM`` in a heat map cell). Axes carry the names and units of the keys
(:mod:`rdusim.sweep.labels`); the exact keys stay in the title and the data CSV.

The plots come from the sweep file's ``plots:`` list; without one, every chosen metric
(at most ``MAX_DEFAULT``) against the first key, by the second, and a heat map over both.
``rdusim report DIR`` writes each plot once, as part of the sweep's page:
``figures/<name>.png`` and its numbers in ``tables/<name>.csv``, listed in the manifest.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import math
import re
from pathlib import Path
from typing import Any, Optional

from rdusim.report.document import Figure
from rdusim.sweep.labels import key_name, label, metric_name, series_names, value_text
from rdusim.sweep.point import PointRow, PointStatus
from rdusim.sweep.spec import PlotKind, PlotSpec
from rdusim.sweep.store import SweepStore
from rdusim.sweep.page import sweep_report

MAX_DEFAULT = 12


def _oom_note(count: int, heatmap: bool = False) -> str:
    mark = "OOM in its cell" if heatmap else "an X in the band at the top"
    gap = "—" if heatmap else "a gap"
    said = (f"{count} point(s) ran out of simulated memory and have no value: {mark} marks each. "
            if count else "No point of this plot ran out of simulated memory. ")
    return said + f"{gap[0].upper() + gap[1:]}: no value for another reason (see the table)."


def render_sweep(directory: str | Path, out: Optional[str | Path] = None) -> list[Path]:
    """Draw every plot of the sweep in ``directory`` into the sweep's page in ``out`` (default:
    the same folder); returns each plot's PNG and CSV, then index.html."""
    from rdusim.report.render import write_report

    with SweepStore.open(directory, lock=False) as store:
        definition, rows = store.definition(), store.rows()
    out_dir = Path(out) if out else Path(directory)
    figures = sweep_figures(definition, rows)
    index = write_report(sweep_report(definition, rows, figures), out_dir)
    paths = [p for f in figures for p in (out_dir / "figures" / f"{f.name}.png", out_dir / "tables" / f"{f.name}.csv")]
    return paths + [index]


def sweep_figures(definition: dict[str, Any], rows: list[PointRow]) -> list[Figure]:
    axes = {k: list(v) for k, v in definition["identity"]["axes"]}
    specs = [_plot_from_plain(p) for p in definition.get("plots", [])] or default_plots(list(axes), rows)
    figures: list[Figure] = []
    for spec in specs:
        metrics = sorted({k for r in rows for k in r.metrics if fnmatch.fnmatchcase(k, spec.metric)})
        if spec.kind == PlotKind.LINE and spec.by is None:
            groups = [metrics] if metrics else []
        else:
            groups = [[m] for m in metrics]
        for group in groups:
            draw = _heatmap if spec.kind == PlotKind.HEATMAP else _line
            figures.append(draw(len(figures), spec, group, axes, rows))
    return figures


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


def _row(rows: list[PointRow], held: dict, **at: Any) -> Optional[PointRow]:
    for r in rows:
        if all(r.params.get(k) == v for k, v in {**held, **at}.items()):
            return r
    return None


def _value(rows: list[PointRow], held: dict, metric: str, **at: Any) -> float:
    r = _row(rows, held, **at)
    v = None if r is None else r.metrics.get(metric)
    return float(v) if isinstance(v, (int, float)) else math.nan


def _oom(rows: list[PointRow], held: dict, metric: str, **at: Any) -> bool:
    """The point has no value of ``metric`` because it ran out of simulated memory: an
    ``.oom`` flag covering the metric's prefix says so, else the point's status."""
    r = _row(rows, held, **at)
    if r is None or isinstance(r.metrics.get(metric), (int, float)):
        return False
    flags = [v for k, v in r.metrics.items() if k.endswith(".oom") and metric.startswith(k[: -len("oom")])]
    return any(v == 1 for v in flags) if flags else r.status is PointStatus.OOM


def _short(key: str) -> str:
    return key.rsplit(".", 2)[-2] + "." + key.rsplit(".", 1)[-1] if key.count(".") >= 2 else key


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80]


def _held_text(held: dict) -> str:
    return "held at " + ", ".join(value_text(k, v) for k, v in held.items()) if held else ""


def _xs(values: list) -> tuple[list, bool]:
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    return (values if numeric else list(range(len(values)))), numeric


def _line(n: int, spec: PlotSpec, metrics: list[str], axes, rows) -> Figure:
    from matplotlib.lines import Line2D
    from matplotlib.ticker import NullFormatter

    from rdusim.report.figures import finish, legend_outside, new_figure, style_axes

    held = _held(spec, axes)
    xvals = axes[spec.x]
    xs, numeric = _xs(xvals)
    metric = metrics[0] if spec.by else spec.metric
    if spec.by is not None:        # (legend name, CSV header, metric, extra point coordinates)
        series = [(value_text(spec.by, b), f"{_short(spec.by)}={_fmt(b)}", metrics[0], {spec.by: b})
                  for b in axes[spec.by]]
    else:
        series = [(name, m, m, {}) for name, m in zip(series_names(metrics), metrics)]
    values = [[_value(rows, held, m, **{spec.x: x}, **at) for x in xvals] for _, _, m, at in series]
    ooms = [[_oom(rows, held, m, **{spec.x: x}, **at) for x in xvals] for _, _, m, at in series]
    fig = new_figure(8.5, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    colours = []
    for (name, _, _, _), ys in zip(series, values):
        colours.append(ax.plot(xs, ys, marker="o", label=name)[0].get_color())
    if spec.logx and numeric:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    if not numeric or spec.logx:
        ax.set_xticks(xs, [_fmt(v) for v in xvals])
    if spec.logy:
        ax.set_yscale("log")
    marked = any(any(o) for o in ooms)
    if marked:                     # headroom for the band of OOM marks
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo, hi * 3.0 if ax.get_yscale() == "log" else hi + 0.3 * (hi - lo))
        for k, (flags, colour) in enumerate(zip(ooms, colours)):
            at = [x for x, f in zip(xs, flags) if f]
            if at:
                ax.plot(at, [1.0 - 0.05 * (k % 5 + 1)] * len(at), marker="X", markersize=8, linestyle="none",
                        color=colour, markeredgecolor="black", transform=ax.get_xaxis_transform())
    style_axes(ax, label(key_name(spec.x)), label(metric_name(metric)))
    ax.set_title(_held_text(held), fontsize=8)
    handles = ax.get_legend_handles_labels()[0]
    if marked:
        handles.append(Line2D([], [], marker="X", color="grey", markeredgecolor="black", linestyle="none",
                              markersize=8, label="out of memory"))
    if len(series) > 1 or marked:
        legend_outside(ax, handles)
    name = f"sweep_{n:02d}_{_slug(metric)}_vs_{_slug(_short(spec.x))}"
    table = [[x, *(v[i] for v in values)] for i, x in enumerate(xvals)]
    caption = (("One line per value of " + key_name(spec.by)[0] + ". " if spec.by else "")
               + (f"Swept keys not shown are {_held_text(held)}. " if held else "")
               + _oom_note(sum(map(sum, ooms))))
    return finish(fig, name, f"{metric} against {key_name(spec.x)[0]}", caption,
                  data_csv=_csv([spec.x, *(h for _, h, _, _ in series)], table))


def _heatmap(n: int, spec: PlotSpec, metrics: list[str], axes, rows) -> Figure:
    from rdusim.report.figures import finish, new_figure

    metric, held = metrics[0], _held(spec, axes)
    xvals, yvals = axes[spec.x], axes[spec.by]
    grid = [[_value(rows, held, metric, **{spec.x: x, spec.by: y}) for x in xvals] for y in yvals]
    fig = new_figure(8.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(xvals)), [_fmt(v) for v in xvals], rotation=30, fontsize=7)
    ax.set_yticks(range(len(yvals)), [_fmt(v) for v in yvals], fontsize=7)
    oom = [[_oom(rows, held, metric, **{spec.x: x, spec.by: y}) for x in xvals] for y in yvals]
    finite = [v for row in grid for v in row if not math.isnan(v)]
    mid = (min(finite) + max(finite)) / 2 if finite else 0.0
    for yi, (row, flags) in enumerate(zip(grid, oom)):
        for xi, (v, flag) in enumerate(zip(row, flags)):
            text = f"{v:.3g}" if not math.isnan(v) else "OOM" if flag else "—"
            ax.text(xi, yi, text, ha="center", va="center", fontsize=6,
                    color="k" if not math.isnan(v) and v > mid else "w")
    fig.colorbar(im, ax=ax, label=label(metric_name(metric)))
    ax.set_xlabel(label(key_name(spec.x)))
    ax.set_ylabel(label(key_name(spec.by)))
    ax.set_title(_held_text(held), fontsize=8)
    name = f"sweep_{n:02d}_{_slug(metric)}_heatmap"
    caption = (f"Swept keys not shown are {_held_text(held)}. " if held else "") + _oom_note(sum(map(sum, oom)), True)
    return finish(fig, name, f"{metric} over {key_name(spec.x)[0]} and {key_name(spec.by)[0]}", caption,
                  data_csv=_csv([f"{spec.by} \\ {spec.x}", *map(str, xvals)],
                                [[y, *row] for y, row in zip(yvals, grid)]))


def _csv(header: list, table: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in table:
        w.writerow(["" if isinstance(v, float) and math.isnan(v) else v for v in row])
    return buf.getvalue()
