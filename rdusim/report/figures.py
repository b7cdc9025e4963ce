"""Matplotlib without pyplot: figures drawn with the Agg canvas only (no global
state, no display), saved to PNG bytes with the title the report lists."""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as MplFigure

from rdusim.report.document import Figure

DPI = 110


def new_figure(width_in: float = 8.0, height_in: float = 4.5) -> MplFigure:
    fig = MplFigure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def finish(fig: MplFigure, name: str, title: str, caption: str = "") -> Figure:
    """Title the figure, lay it out and return it as a report Figure (PNG bytes)."""
    fig.suptitle(title, fontsize=12, fontweight="bold")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    fig.clear()
    return Figure(name=name, title=title, png=buf.getvalue(), caption=caption)


def style_axes(ax, xlabel: str, ylabel: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_axisbelow(True)
