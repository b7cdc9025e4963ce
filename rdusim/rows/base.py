"""What every row family shares: the value type, the 95% interval suffixes, name checks
and the one loop that turns rows into the flat ``metrics`` mapping of results.json.

A row is a frozen dataclass with typed fields naming *what* was measured (platform,
benchmark, batch size, ...), a ``metric`` leaf, its ``value`` and optionally ``ci``, the
(low, high) of its 95% confidence interval, written as ``<key>.ci95_low`` / ``.ci95_high``. Its family module holds
the one key template: ``row.key()`` writes the dotted key, the module's ``parse(key)``
reads it back (``None`` for a key of another shape), so a key format is written once.

Module-level state: ``_IDENTITY`` memoises each row type's identity fields (a pure
function of the type), filled on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterable, Mapping, Optional, Protocol, Union

Value = Union[int, float, None]     # as the study computed it; None: null in results.json
CI_LOW, CI_HIGH = ".ci95_low", ".ci95_high"
CI_SUFFIXES = (CI_LOW, CI_HIGH)
_BOUNDS = (CI_LOW[1:], CI_HIGH[1:])
Interval = Optional[tuple]           # (low, high) of a 95% confidence interval
_MISSING = object()


class Row(Protocol):
    value: Value

    def key(self) -> str: ...


@dataclass(frozen=True)
class MetricRow:
    """A metric whose key is of no family's shape, kept whole (validate can still compare it)."""

    name: str
    value: Value
    ci: Interval = None

    def key(self) -> str:
        return self.name


def ci_keys(key: str) -> tuple[str, str]:
    """The keys of ``key``'s 95% confidence interval (low, high)."""
    return key + CI_LOW, key + CI_HIGH


def interval(metrics: Mapping[str, object], key: str) -> tuple[object, object]:
    """The stored bounds of ``key``'s 95% interval (None where absent)."""
    low, high = ci_keys(key)
    return metrics.get(low), metrics.get(high)


def to_metrics(rows: Iterable[Row], into: Optional[dict] = None) -> dict:
    """The flat metrics of ``rows``: ``key() -> value``, plus the two interval keys of a
    row that carries one (``ci``: (low, high)). A key written twice is a bug."""
    out: dict = {} if into is None else into
    for row in rows:
        k = row.key()
        if k in out:
            raise ValueError(f"metric key {k!r} written twice")
        out[k] = row.value
        ci = getattr(row, "ci", None)
        if ci is not None:
            out[k + CI_LOW], out[k + CI_HIGH] = ci
    return out


def name(value: str, what: str) -> str:
    """A name that can sit between dots of a key: non-empty, no dot."""
    if not isinstance(value, str) or not value or "." in value:
        raise ValueError(f"{what} must be a non-empty name without '.', got {value!r}")
    return value


def leaf(value: str, what: str = "metric") -> str:
    """A metric path below a row's identity: dotted segments, none empty, the last not an
    interval bound's name."""
    if not isinstance(value, str) or not value or any(not s for s in value.split(".")):
        raise ValueError(f"{what} must be dotted non-empty segments, got {value!r}")
    if value.rsplit(".", 1)[-1] in _BOUNDS:
        raise ValueError(f"{what} {value!r} reads as an interval bound")
    return value


def metric(value: str, what: str = "metric") -> str:
    """A one-segment metric name (not an interval bound's name)."""
    name(value, what)
    return leaf(value, what)


def check_ci(ci) -> None:
    if ci is not None and not (isinstance(ci, tuple) and len(ci) == 2):
        raise ValueError(f"ci must be a (low, high) tuple or None, got {ci!r}")


def numbered(part: str, prefix: str) -> Optional[int]:
    """``bs4`` with prefix ``bs`` -> 4; None when ``part`` is not that shape."""
    if part.startswith(prefix):
        digits = part[len(prefix):]
        if digits.isdigit() and digits.isascii() and digits == str(int(digits)):
            return int(digits)
    return None


def read_family(metrics: Mapping[str, Value], prefix: str, parse) -> list:
    """The rows of one family: ``parse(key, value, ci)`` for each key under ``prefix`` that
    is not an interval bound, with the bounds of its interval when both are there."""
    plain, bounds = split_ci(metrics, prefix)
    out = []
    for k, v in plain.items():
        b = bounds.get(k)
        row = parse(k, v, tuple(b) if b is not None and _MISSING not in b else None)
        if row is not None:
            out.append(row)
    return out


def split_ci(metrics: Mapping[str, Value], prefix: str) -> tuple[dict[str, Value], dict[str, list]]:
    """The keys under ``prefix`` (a family's first segment with its dot), and the interval
    bounds by their base key: ``{base: [low, high]}`` (``_MISSING`` for a bound not there)."""
    plain: dict[str, Value] = {}
    bounds: dict[str, list] = {}
    for k, v in metrics.items():
        if not k.startswith(prefix):
            continue
        if k.endswith(CI_LOW):
            bounds.setdefault(k[: -len(CI_LOW)], [_MISSING, _MISSING])[0] = v
        elif k.endswith(CI_HIGH):
            bounds.setdefault(k[: -len(CI_HIGH)], [_MISSING, _MISSING])[1] = v
        else:
            plain[k] = v
    return plain, bounds


_LEAF_FIELDS = frozenset({"metric", "part", "value", "ci"})
_IDENTITY: dict[type, tuple[str, ...]] = {}


def identity(row) -> tuple:
    """The fields of a row that say what was measured (all but its metric, value and ci)."""
    names = _IDENTITY.get(type(row))
    if names is None:
        names = _IDENTITY[type(row)] = tuple(f.name for f in fields(row) if f.name not in _LEAF_FIELDS)
    return tuple(getattr(row, n) for n in names)


def by_identity(rows: Iterable, kind: Optional[type] = None) -> dict[tuple, dict[str, Value]]:
    """``{identity: {metric: value}}`` of the rows (of class ``kind`` only, when given): a
    table readers index by typed fields instead of building key strings."""
    out: dict[tuple, dict[str, Value]] = {}
    for r in rows:
        if kind is None or type(r) is kind:
            out.setdefault(identity(r), {})[r.metric if hasattr(r, "metric") else r.part] = r.value
    return out
