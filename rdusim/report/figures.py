"""Matplotlib without pyplot: figures drawn with the Agg canvas only (no global
state, no display), saved to PNG bytes with the title the report lists.

Legends go beside the axes (:func:`legend_outside`), never over the data; :func:`finish`
records what :func:`legend_over_data` finds, so a test (or the page) can tell."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import Collection, PathCollection
from matplotlib.figure import Figure as MplFigure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from rdusim.report.document import Figure

DPI = 110
_SAMPLES = 12          # points checked along each drawn line segment


def new_figure(width_in: float = 8.0, height_in: float = 4.5) -> MplFigure:
    fig = MplFigure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def finish(fig: MplFigure, name: str, title: str, caption: str = "", *, data_csv: str = "",
           suptitle: bool = True) -> Figure:
    """Title the figure, lay it out and return it as a report Figure (PNG bytes), with its
    axis labels and whatever legend covers data."""
    if suptitle:
        fig.suptitle(title, fontsize=12, fontweight="bold")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    labels = tuple(text for ax in fig.axes for text in (ax.get_xlabel(), ax.get_ylabel()) if text)
    covered = tuple(legend_over_data(fig))
    fig.clear()
    return Figure(name=name, title=title, png=buf.getvalue(), caption=caption, axis_labels=labels,
                  legend_over_data=covered, data_csv=data_csv)


def style_axes(ax, xlabel: str, ylabel: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_axisbelow(True)


def legend_outside(ax, handles=None, fontsize: float = 7, **kw):
    """The axes' legend to its right, top-aligned, outside the plotting area (tight_layout
    makes room for it), so it never hides a curve."""
    if handles is not None:
        kw["handles"] = handles
    return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=fontsize, **kw)


# ---------------------------------------------------------------- layout check
def _inside(points: np.ndarray, box) -> int:
    if not len(points):
        return 0
    x, y = points[:, 0], points[:, 1]
    return int(((x > box.x0) & (x < box.x1) & (y > box.y0) & (y < box.y1)).sum())


def _clip(points: np.ndarray, box) -> np.ndarray:
    """Finite points inside ``box`` (what the axes actually shows of them)."""
    points = points[np.isfinite(points).all(axis=1)]
    keep = (points[:, 0] >= box.x0) & (points[:, 0] <= box.x1) & (points[:, 1] >= box.y0) & (points[:, 1] <= box.y1)
    return points[keep]


def _densify(points: np.ndarray) -> np.ndarray:
    """The vertices of a polyline and points along each of its segments."""
    if len(points) < 2:
        return points
    t = np.linspace(0.0, 1.0, _SAMPLES)[None, :, None]
    a, b = points[:-1, None, :], points[1:, None, :]
    return (a + (b - a) * t).reshape(-1, 2)


def _line_points(line: Line2D) -> np.ndarray:
    xy = np.asarray(line.get_xydata(), float).reshape(-1, 2)
    pts = line.get_transform().transform(xy)
    if line.get_linestyle() not in ("None", "none", " ", ""):
        # a gap (nan) ends a drawn segment: densify each finite run on its own
        ok = np.isfinite(pts).all(axis=1)
        runs, start = [], None
        for i, good in enumerate(list(ok) + [False]):
            if good and start is None:
                start = i
            elif not good and start is not None:
                runs.append(_densify(pts[start:i]))
                start = None
        pts = np.concatenate(runs) if runs else np.empty((0, 2))
    return pts


def _collection_points(coll: Collection) -> np.ndarray:
    """Scatter markers at their offsets; other collections (error bars, fills) along their paths."""
    if isinstance(coll, PathCollection):
        offsets = np.asarray(coll.get_offsets(), float).reshape(-1, 2)
        return coll.get_offset_transform().transform(offsets) if len(offsets) else np.empty((0, 2))
    out = [_densify(coll.get_transform().transform(np.asarray(p.vertices, float).reshape(-1, 2)))
           for p in coll.get_paths()]
    return np.concatenate(out) if out else np.empty((0, 2))


def legend_over_data(fig: MplFigure) -> list[str]:
    """Each legend (of an axes or of the figure) that covers something plotted in an axes:
    a line's vertices or a point along its segments, a marker, an error bar, or a bar.
    Call after the figure is drawn (``finish`` calls it after saving)."""
    renderer = fig.canvas.get_renderer()
    legends = [(f"legend of axes {i}", ax.get_legend()) for i, ax in enumerate(fig.axes) if ax.get_legend()]
    legends += [(f"figure legend {i}", lg) for i, lg in enumerate(fig.legends)]
    if not legends:
        return []
    boxes = [(name, lg.get_window_extent(renderer)) for name, lg in legends]
    found = []
    for i, ax in enumerate(fig.axes):
        area = ax.get_window_extent(renderer)
        for artist in [*ax.lines, *ax.collections, *ax.patches]:
            if not artist.get_visible():
                continue
            label = str(artist.get_label()) if not str(artist.get_label()).startswith("_") else type(artist).__name__
            for name, box in boxes:
                if isinstance(artist, Patch):
                    bb = artist.get_window_extent(renderer)
                    hit = (np.isfinite([bb.x0, bb.x1, bb.y0, bb.y1]).all() and bb.width > 0 and bb.height > 0
                           and bb.overlaps(box) and bb.overlaps(area))
                    n = int(hit)
                else:
                    pts = _line_points(artist) if isinstance(artist, Line2D) else _collection_points(artist)
                    n = _inside(_clip(pts, area), box)
                if n:
                    found.append(f"{name} covers {label} in axes {i} ({n} point(s))")
    return found
