"""The report as data: sections of tables, figures and notes. Renderers (html,
markdown, csv) turn a :class:`Report` into files; builders never write files."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass(frozen=True)
class Table:
    name: str                          # file stem of its CSV: tables/<name>.csv
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    note: str = ""
    max_shown: int = 200               # rows shown in html/markdown; the CSV has them all
    collapsed: bool = False            # html: inside a closed <details>


@dataclass(frozen=True)
class Figure:
    name: str                          # file stem of its PNG: figures/<name>.png
    title: str                         # also the title drawn on the plot
    png: bytes
    caption: str = ""
    axis_labels: tuple[str, ...] = ()       # as drawn, every axes' x and y label (the page's alt text names them)
    legend_over_data: tuple[str, ...] = ()  # what figures.legend_over_data found (empty: no legend covers data)
    data_csv: str = ""                      # the plotted numbers, written as tables/<name>.csv (sweep plots)


@dataclass(frozen=True)
class Section:
    title: str
    intro: str = ""
    tables: tuple[Table, ...] = ()
    figures: tuple[Figure, ...] = ()
    notes: tuple[str, ...] = ()        # what could not be shown, and why
    preformatted: Optional[str] = None  # e.g. the resolved workload as YAML


@dataclass(frozen=True)
class Report:
    title: str
    stamp: tuple[tuple[str, str], ...]
    sections: tuple[Section, ...] = field(default=())

    @property
    def figures(self) -> tuple[Figure, ...]:
        return tuple(f for s in self.sections for f in s.figures)

    @property
    def tables(self) -> tuple[Table, ...]:
        return tuple(t for s in self.sections for t in s.tables)

    @property
    def figure_titles(self) -> list[str]:
        return [f.title for f in self.figures]


def fmt(value: Any) -> str:
    """A table cell for people: 4 significant digits, '-' for missing."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        if value == int(value) and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.4g}"
    return str(value)
