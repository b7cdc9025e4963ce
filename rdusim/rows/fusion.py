"""Fusion study rows: ``fusion.<bench>[.<platform>].<mode>.<metric>``.

``platform`` None is the un-prefixed copy the study writes for its first RDU platform.
``mode`` is a run mode (``unfused``, ``fused_so``, ``fused_ho``; GPU ``fused``) or
``speedup``, whose ``metric`` names the ratio (``fused_ho_vs_unfused``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

from rdusim.rows.base import Interval, Value, check_ci, metric, name, read_family

PREFIX = "fusion."
SPEEDUP = "speedup"


@dataclass(frozen=True)
class FusionRow:
    bench: str
    platform: Optional[str]
    mode: str
    metric: str
    value: Value
    ci: Interval = None

    def __post_init__(self):
        name(self.bench, "bench")
        if self.platform is not None:
            name(self.platform, "platform")
        name(self.mode, "mode")
        metric(self.metric)
        check_ci(self.ci)

    @property
    def is_speedup(self) -> bool:
        return self.mode == SPEEDUP

    def key(self) -> str:
        if self.platform is None:
            return f"fusion.{self.bench}.{self.mode}.{self.metric}"
        return f"fusion.{self.bench}.{self.platform}.{self.mode}.{self.metric}"


def parse(key: str, value: Value, ci: Interval = None) -> Optional[FusionRow]:
    """The row of ``key`` (None: not a fusion key of a known shape)."""
    try:
        return _parse(key, value, ci) if key.startswith(PREFIX) else None
    except ValueError:
        return None


def _parse(key: str, value: Value, ci: Interval) -> Optional[FusionRow]:
    parts = key.split(".")
    if len(parts) == 4:
        return FusionRow(parts[1], None, parts[2], parts[3], value, ci)
    if len(parts) == 5:
        return FusionRow(parts[1], parts[2], parts[3], parts[4], value, ci)
    return None


def from_metrics(metrics: Mapping[str, Value]) -> list[FusionRow]:
    return read_family(metrics, PREFIX, parse)


def step_rows(bench: str, platform: Optional[str], mode: str, values: Mapping[str, Value]) -> list[FusionRow]:
    """One row per metric of one (benchmark, platform, mode) step."""
    return [FusionRow(bench, platform, mode, m, v) for m, v in values.items()]
