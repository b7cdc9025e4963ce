"""Typed result rows: what studies produce and what the report and validate read.

One module per family (:mod:`~rdusim.rows.coe`, :mod:`~rdusim.rows.fusion`,
:mod:`~rdusim.rows.model`, :mod:`~rdusim.rows.serve`), each with its frozen row
dataclasses, the one key template of each (``row.key()``) and its reader
(``parse(key, value)``, ``from_metrics(metrics)``). Dotted keys exist only in
results.json: :func:`to_metrics` writes them, ``from_metrics`` reads them back.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Mapping, Optional

from rdusim.rows.base import CI_SUFFIXES, MetricRow, Row, Value, ci_keys, interval, to_metrics

# the families, each imported when first asked for (a model run loads only its own)
FAMILY_NAMES = ("coe", "finetune", "fusion", "model", "serve")


def family(name: str) -> Optional[ModuleType]:
    """The rows module of the family whose keys start with ``name`` (None: no family)."""
    return importlib.import_module(f"rdusim.rows.{name}") if name in FAMILY_NAMES else None


def __getattr__(name: str):
    if name in FAMILY_NAMES:
        return family(name)
    if name == "FAMILIES":
        return {n: family(n) for n in FAMILY_NAMES}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def from_metrics(metrics: Mapping[str, Value]) -> list:
    """Every row of every family found in ``metrics`` (keys of other shapes are skipped)."""
    out: list = []
    for name in FAMILY_NAMES:
        out += family(name).from_metrics(metrics)
    return out


def _reserved(kind: str) -> tuple[str, ...]:
    if kind == "coe":
        return tuple(family("coe").RESERVED)
    if kind == "serve":
        return tuple(family("serve").RUN_LEVEL)
    return ()


def platform_name_problem(platform: str, kind: str) -> Optional[str]:
    """What a platform name of a ``kind`` workload must be for its rows' keys to read back
    (None: it is fine). Config loading turns an answer into an InputError."""
    if not platform or "." in platform:
        return "a platform name without '.' (it sits between the dots of metric keys)"
    reserved = _reserved(kind)
    if platform in reserved:
        return f"a platform name other than {', '.join(reserved)} (reserved in {kind}.* metric keys)"
    vs = family("coe").VS if kind == "coe" else None
    if vs is not None and vs in platform:
        return f"a platform name without '{vs}' (CoE speedup keys join two platform names with it)"
    return None


def lookup(metrics: Mapping[str, Value], key: str):
    """The row of one metric ``key`` with its interval (both bounds there), read by its
    family (a :class:`MetricRow` for a key of no family's shape); None when absent."""
    if key not in metrics:
        return None
    low, high = ci_keys(key)
    ci = (metrics[low], metrics[high]) if low in metrics and high in metrics else None
    fam = family(key.partition(".")[0])
    row = fam.parse(key, metrics[key], ci) if fam is not None else None
    return row if row is not None else MetricRow(key, metrics[key], ci)


__all__ = ["CI_SUFFIXES", "FAMILY_NAMES", "MetricRow", "Row", "Value", "ci_keys", "family", "from_metrics", "interval",
           "lookup", "platform_name_problem", "to_metrics"]
