"""Serving rows: ``serve.<platform>[.<mode>[.load<i>]].<metric>``, and run-level
``serve.<metric>`` rows (platform None) whose first segment is a reserved name
(``step_cache``).

``mode`` is a batching mode (``continuous``, ``static``), ``coe`` or ``adapters``; ``load`` the index
of the load-sweep rate (None: the main load point). ``metric`` may be dotted
(``ttft.p99_s``, ``capacity.max_rate_per_s``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

from rdusim.rows.base import Interval, Value, check_ci, leaf, name, numbered, read_family

PREFIX = "serve."
MODES = ("continuous", "static", "coe", "adapters")
RUN_LEVEL = ("step_cache",)


@dataclass(frozen=True)
class ServeRow:
    platform: Optional[str]
    mode: Optional[str]
    load: Optional[int]
    metric: str
    value: Value
    ci: Interval = None

    def __post_init__(self):
        leaf(self.metric)
        check_ci(self.ci)
        head = self.metric.split(".", 1)[0]
        if self.platform is None:
            if head not in RUN_LEVEL or self.mode is not None or self.load is not None:
                raise ValueError(f"a run-level serve row needs a metric under {RUN_LEVEL}, got {self.metric!r}")
            return
        name(self.platform, "platform")
        if self.platform in RUN_LEVEL:
            raise ValueError(f"platform name {self.platform!r} is reserved")
        if self.mode is None:
            if self.load is not None or head in MODES:
                raise ValueError("a platform-level serve row has no load point and no mode-named metric")
        elif self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        elif self.load is None and numbered(head, "load") is not None:
            raise ValueError(f"metric {self.metric!r} reads as a load point")
        if self.load is not None and (type(self.load) is not int or self.load < 0):
            raise ValueError(f"load must be an int >= 0, got {self.load!r}")

    def key(self) -> str:
        if self.platform is None:
            return f"serve.{self.metric}"
        if self.mode is None:
            return f"serve.{self.platform}.{self.metric}"
        if self.load is None:
            return f"serve.{self.platform}.{self.mode}.{self.metric}"
        return f"serve.{self.platform}.{self.mode}.load{self.load}.{self.metric}"


def parse(key: str, value: Value, ci: Interval = None) -> Optional[ServeRow]:
    """The row of ``key`` (None: not a serve key of a known shape)."""
    try:
        return _parse(key, value, ci) if key.startswith(PREFIX) else None
    except ValueError:
        return None


def _parse(key: str, value: Value, ci: Interval) -> Optional[ServeRow]:
    parts = key.split(".")
    if len(parts) < 3 or "" in parts:
        return None
    if parts[1] in RUN_LEVEL:
        return ServeRow(None, None, None, ".".join(parts[1:]), value, ci)
    plat = parts[1]
    if parts[2] not in MODES or len(parts) < 4:
        return ServeRow(plat, None, None, ".".join(parts[2:]), value, ci)
    load = numbered(parts[3], "load")
    if load is not None and len(parts) > 4:
        return ServeRow(plat, parts[2], load, ".".join(parts[4:]), value, ci)
    return ServeRow(plat, parts[2], None, ".".join(parts[3:]), value, ci)


def from_metrics(metrics: Mapping[str, Value]) -> list[ServeRow]:
    return read_family(metrics, PREFIX, parse)


def point_rows(platform: str, mode: str, load: Optional[int], values: Mapping[str, Value]) -> list[ServeRow]:
    """One row per metric of one serving point (a platform, a mode, a load)."""
    return [ServeRow(platform, mode, load, m, v) for m, v in values.items()]
