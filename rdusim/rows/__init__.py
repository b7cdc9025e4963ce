"""Typed result rows: what studies produce and what the report and validate read.

One module per family (:mod:`~rdusim.rows.coe`, :mod:`~rdusim.rows.fusion`,
:mod:`~rdusim.rows.model`, :mod:`~rdusim.rows.serve`), each with its frozen row
dataclasses, the one key template of each (``row.key()``) and its reader
(``parse(key, value)``, ``from_metrics(metrics)``). Dotted keys exist only in
results.json: :func:`to_metrics` writes them, ``from_metrics`` reads them back.
"""

from __future__ import annotations

from typing import Mapping, Optional

from rdusim.rows import coe, fusion, model, serve
from rdusim.rows.base import CI_SUFFIXES, MetricRow, Row, Value, ci_keys, interval, to_metrics

FAMILIES = {"coe": coe, "fusion": fusion, "model": model, "serve": serve}


def from_metrics(metrics: Mapping[str, Value]) -> list:
    """Every row of every family found in ``metrics`` (keys of other shapes are skipped)."""
    out: list = []
    for fam in FAMILIES.values():
        out += fam.from_metrics(metrics)
    return out


_RESERVED = {"coe": coe.RESERVED, "serve": serve.RUN_LEVEL}


def platform_name_problem(platform: str, kind: str) -> Optional[str]:
    """What a platform name of a ``kind`` workload must be for its rows' keys to read back
    (None: it is fine). Config loading turns an answer into an InputError."""
    if not platform or "." in platform:
        return "a platform name without '.' (it sits between the dots of metric keys)"
    reserved = _RESERVED.get(kind, ())
    if platform in reserved:
        return f"a platform name other than {', '.join(reserved)} (reserved in {kind}.* metric keys)"
    if kind == "coe" and coe.VS in platform:
        return f"a platform name without '{coe.VS}' (CoE speedup keys join two platform names with it)"
    return None


def lookup(metrics: Mapping[str, Value], key: str):
    """The row of one metric ``key`` with its interval (both bounds there), read by its
    family (a :class:`MetricRow` for a key of no family's shape); None when absent."""
    if key not in metrics:
        return None
    low, high = ci_keys(key)
    ci = (metrics[low], metrics[high]) if low in metrics and high in metrics else None
    fam = FAMILIES.get(key.partition(".")[0])
    row = fam.parse(key, metrics[key], ci) if fam is not None else None
    return row if row is not None else MetricRow(key, metrics[key], ci)


__all__ = ["CI_SUFFIXES", "FAMILIES", "MetricRow", "Row", "Value", "ci_keys", "coe", "from_metrics", "fusion", "interval",
           "lookup", "model", "platform_name_problem", "serve", "to_metrics"]
