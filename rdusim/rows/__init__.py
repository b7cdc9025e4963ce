"""Typed result rows: what studies produce and what the report and validate read.

One module per family (:mod:`~rdusim.rows.coe`, :mod:`~rdusim.rows.fusion`,
:mod:`~rdusim.rows.model`, :mod:`~rdusim.rows.serve`), each with its frozen row
dataclasses, the one key template of each (``row.key()``) and its reader
(``parse(key, value)``, ``from_metrics(metrics)``). Dotted keys exist only in
results.json: :func:`to_metrics` writes them, ``from_metrics`` reads them back.
"""

from __future__ import annotations

from typing import Mapping

from rdusim.rows import coe, fusion, model, serve
from rdusim.rows.base import CI_SUFFIXES, Row, Value, ci_keys, interval, to_metrics

FAMILIES = {"coe": coe, "fusion": fusion, "model": model, "serve": serve}


def from_metrics(metrics: Mapping[str, Value]) -> list:
    """Every row of every family found in ``metrics`` (keys of other shapes are skipped)."""
    out: list = []
    for fam in FAMILIES.values():
        out += fam.from_metrics(metrics)
    return out


__all__ = ["CI_SUFFIXES", "FAMILIES", "Row", "Value", "ci_keys", "coe", "from_metrics", "fusion", "interval",
           "model", "serve", "to_metrics"]
