"""CoE study rows, one key template per shape:

- :class:`CoePointRow` ``coe.<P>.bs<B>.tok<T>[.experts<N>].<metric>``: a serving point
  (``experts`` None: the workload's expert count, else the expert-count sweep);
- :class:`CoeSpeedupRow` ``coe.speedup.<A>_vs_<C>.bs<B>.tok<T>.<part>`` (``overall``,
  ``expert``) and ``coe.speedup.<A>_vs_<C>.switch`` (batch and tokens None);
- :class:`CoeCapacityRow` ``coe.capacity.<P>.<metric>``;
- :class:`CoeFootprintRow` ``coe.footprint.<P>.nodes_for<N>``;
- :class:`CoePlatformRow` ``coe.<P>.<metric>`` (``expert_bytes``, ``lone_switch_s``);
- :class:`CoeRunRow` ``coe.<metric>`` (``replications``, ``batches_per_replication``).

A mean over replications carries its 95% interval as ``ci`` = (low, high), written as
``<key>.ci95_low`` / ``<key>.ci95_high`` (as any row of any family may).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping, Optional, Union

from rdusim.rows.base import Interval, Value, check_ci, metric, name, numbered, read_family

PREFIX = "coe."
RESERVED = ("speedup", "capacity", "footprint")
VS = "_vs_"


def scenario_label(batch: int, tokens: int) -> str:
    """``bs<B>.tok<T>``: a scenario as it sits in keys (and in ``extra.scenarios``)."""
    return f"bs{batch}.tok{tokens}"


def parse_scenario(label: str) -> Optional[tuple[int, int]]:
    """(batch, tokens) of a :func:`scenario_label`; None for another shape."""
    return _scenario(label.split("."))


def _platform(p: str) -> str:
    name(p, "platform")
    if p in RESERVED:
        raise ValueError(f"platform name {p!r} is reserved in coe keys")
    return p


def _metric(m: str) -> str:
    return metric(m)


def _count(n: Optional[int], what: str, allow_none: bool = False) -> None:
    if n is None and allow_none:
        return
    if type(n) is not int or n < 0:
        raise ValueError(f"{what} must be an int >= 0, got {n!r}")


@dataclass(frozen=True)
class CoePointRow:
    platform: str
    batch: int
    tokens: int
    experts: Optional[int]
    metric: str
    value: Value
    ci: Interval = None

    def __post_init__(self):
        check_ci(self.ci)
        _platform(self.platform)
        _metric(self.metric)
        _count(self.batch, "batch")
        _count(self.tokens, "tokens")
        _count(self.experts, "experts", allow_none=True)

    def prefix(self) -> str:
        """The key without its metric: the serving point (``extra.oom_reasons`` is keyed by it)."""
        sweep = "" if self.experts is None else f".experts{self.experts}"
        return f"coe.{self.platform}.{scenario_label(self.batch, self.tokens)}{sweep}"

    def key(self) -> str:
        return f"{self.prefix()}.{self.metric}"


@dataclass(frozen=True)
class CoeSpeedupRow:
    reference: str
    other: str
    batch: Optional[int]
    tokens: Optional[int]
    part: str
    value: Value
    ci: Interval = None

    def __post_init__(self):
        check_ci(self.ci)
        for p in (self.reference, self.other):
            name(p, "platform")
            if VS in p:
                raise ValueError(f"platform name {p!r} holds {VS!r}")
        _metric(self.part)
        if (self.batch is None) != (self.tokens is None):
            raise ValueError("a speedup has both batch and tokens, or neither (the switch ratio)")
        _count(self.batch, "batch", allow_none=True)
        _count(self.tokens, "tokens", allow_none=True)
        if self.batch is None and self.part != "switch":
            raise ValueError("a speedup without a scenario is the switch ratio")

    def key(self) -> str:
        head = f"coe.speedup.{self.reference}{VS}{self.other}"
        if self.batch is None:
            return f"{head}.{self.part}"
        return f"{head}.{scenario_label(self.batch, self.tokens)}.{self.part}"


@dataclass(frozen=True)
class CoeCapacityRow:
    platform: str
    metric: str
    value: Value
    ci: Interval = None

    def __post_init__(self):
        check_ci(self.ci)
        name(self.platform, "platform")
        _metric(self.metric)

    def key(self) -> str:
        return f"coe.capacity.{self.platform}.{self.metric}"


@dataclass(frozen=True)
class CoeFootprintRow:
    platform: str
    experts: int
    value: Value
    ci: Interval = None
    metric: ClassVar[str] = "nodes"      # the value: nodes needed for ``experts`` experts

    def __post_init__(self):
        check_ci(self.ci)
        name(self.platform, "platform")
        _count(self.experts, "experts")

    def key(self) -> str:
        return f"coe.footprint.{self.platform}.nodes_for{self.experts}"


@dataclass(frozen=True)
class CoePlatformRow:
    platform: str
    metric: str
    value: Value
    ci: Interval = None

    def __post_init__(self):
        check_ci(self.ci)
        _platform(self.platform)
        _metric(self.metric)
        if numbered(self.metric, "bs") is not None:
            raise ValueError(f"metric {self.metric!r} reads as a batch size")

    def key(self) -> str:
        return f"coe.{self.platform}.{self.metric}"


@dataclass(frozen=True)
class CoeRunRow:
    metric: str
    value: Value
    ci: Interval = None

    def __post_init__(self):
        check_ci(self.ci)
        _metric(self.metric)

    def key(self) -> str:
        return f"coe.{self.metric}"


CoeRow = Union[CoePointRow, CoeSpeedupRow, CoeCapacityRow, CoeFootprintRow, CoePlatformRow, CoeRunRow]


def parse(key: str, value: Value, ci: Interval = None) -> Optional[CoeRow]:
    """The row of ``key`` (None: not a coe key of a known shape)."""
    try:
        return _parse(key, value, ci) if key.startswith(PREFIX) else None
    except ValueError:
        return None


def _scenario(parts: list[str]) -> Optional[tuple[int, int]]:
    """(batch, tokens) of the first two key segments ``bs<B>``, ``tok<T>``."""
    if len(parts) >= 2:
        bs, tok = numbered(parts[0], "bs"), numbered(parts[1], "tok")
        if bs is not None and tok is not None:
            return bs, tok
    return None


def _parse(key: str, value: Value, ci: Interval) -> Optional[CoeRow]:
    parts = key.split(".")
    if "" in parts or len(parts) < 2:
        return None
    head = parts[1]
    if len(parts) == 2:
        return CoeRunRow(head, value, ci)
    if head == "speedup":
        ref, vs, other = parts[2].partition(VS)
        if not vs:
            return None
        if len(parts) == 4:
            return CoeSpeedupRow(ref, other, None, None, parts[3], value, ci)
        sc = _scenario(parts[3:])
        if len(parts) == 6 and sc:
            return CoeSpeedupRow(ref, other, sc[0], sc[1], parts[5], value, ci)
        return None
    if head == "capacity":
        return CoeCapacityRow(parts[2], parts[3], value, ci) if len(parts) == 4 else None
    if head == "footprint":
        n = numbered(parts[3], "nodes_for") if len(parts) == 4 else None
        return CoeFootprintRow(parts[2], n, value, ci) if n is not None else None
    if len(parts) == 3:
        return CoePlatformRow(head, parts[2], value, ci)
    sc = _scenario(parts[2:])
    if sc is None:
        return None
    if len(parts) == 5:
        return CoePointRow(head, sc[0], sc[1], None, parts[4], value, ci)
    n = numbered(parts[4], "experts")
    if len(parts) == 6 and n is not None:
        return CoePointRow(head, sc[0], sc[1], n, parts[5], value, ci)
    return None


def from_metrics(metrics: Mapping[str, Value]) -> list[CoeRow]:
    """Every coe row; interval bounds join the row of their base key."""
    return read_family(metrics, PREFIX, parse)
