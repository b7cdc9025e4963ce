"""The report's views of a result: its typed rows (:mod:`rdusim.rows`, which read the
dotted keys of results.json) grouped as the sections show them.

Only the contract's key shapes are recognised (architecture doc, "results.json");
anything else is left to the all-metrics CSV. Platform, benchmark and scenario
names come from the rows themselves: nothing assumes which platforms exist.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from rdusim.rows import coe as coe_rows, fusion as fusion_rows, model as model_rows
from rdusim.rows.base import CI_HIGH, CI_LOW

FUSION_MODES = ("unfused", "fused", "fused_so", "fused_ho")
BREAKDOWN = ("compute", "memory", "launch", "collective", "host")


@dataclass(frozen=True, order=True)
class Scenario:
    bs: int
    tok: int

    @property
    def label(self) -> str:
        return f"BS={self.bs}, {self.tok} tok"


def num(value: Any) -> Optional[float]:
    """A metric value as a float, or None when missing / null / not finite."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


# ---------------------------------------------------------------- CoE
@dataclass
class CoeView:
    platforms: list[str] = field(default_factory=list)
    scenarios: dict[tuple[str, Scenario], dict[str, Optional[float]]] = field(default_factory=dict)
    sweep: dict[tuple[str, Scenario], dict[int, dict[str, Optional[float]]]] = field(default_factory=dict)
    speedups: dict[tuple[str, str, Scenario], dict[str, Optional[float]]] = field(default_factory=dict)
    switch_speedups: dict[tuple[str, str], Optional[float]] = field(default_factory=dict)
    capacity: dict[str, dict[str, Optional[float]]] = field(default_factory=dict)
    footprint: dict[str, dict[int, Optional[float]]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.scenarios or self.sweep or self.speedups or self.switch_speedups
                    or self.capacity or self.footprint)

    def scenario_list(self) -> list[Scenario]:
        return sorted({s for _, s in self.scenarios} | {s for _, s in self.sweep})


def coe_view(metrics: Mapping[str, Any], order: list[str]) -> CoeView:
    """The CoE rows (:mod:`rdusim.rows.coe`) of ``metrics``, by what the report shows."""
    v = CoeView()
    seen: list[str] = []
    for r in coe_rows.from_metrics(metrics):
        val = num(r.value)
        if isinstance(r, coe_rows.CoeSpeedupRow):
            if r.batch is None:
                if r.part == "switch":
                    v.switch_speedups[(r.reference, r.other)] = val
                continue
            d = v.speedups.setdefault((r.reference, r.other, Scenario(r.batch, r.tokens)), {})
            d[r.part] = val
            if r.ci is not None:
                d[r.part + CI_LOW], d[r.part + CI_HIGH] = num(r.ci[0]), num(r.ci[1])
        elif isinstance(r, coe_rows.CoeCapacityRow):
            v.capacity.setdefault(r.platform, {})[r.metric] = val
            seen.append(r.platform)
        elif isinstance(r, coe_rows.CoeFootprintRow):
            v.footprint.setdefault(r.platform, {})[r.experts] = val
            seen.append(r.platform)
        elif isinstance(r, coe_rows.CoePointRow):
            s = Scenario(r.batch, r.tokens)
            if r.experts is None:
                v.scenarios.setdefault((r.platform, s), {})[r.metric] = val
            else:
                v.sweep.setdefault((r.platform, s), {}).setdefault(r.experts, {})[r.metric] = val
            seen.append(r.platform)
    v.platforms = ordered(order, seen)
    return v


# ---------------------------------------------------------------- fusion
@dataclass
class FusionView:
    """Fusion metrics of one platform (``platform`` None: the unqualified keys
    ``fusion.<b>.<mode>.*``, which the study writes for its first RDU)."""

    platform: Optional[str] = None
    benchmarks: list[str] = field(default_factory=list)
    modes: dict[tuple[str, str], dict[str, Optional[float]]] = field(default_factory=dict)
    speedups: dict[str, dict[str, Optional[float]]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.modes or self.speedups)

    def mode_list(self) -> list[str]:
        found = {m for _, m in self.modes}
        return [m for m in FUSION_MODES if m in found] + sorted(found - set(FUSION_MODES))


def fusion_view(metrics: Mapping[str, Any], platforms: Sequence[str] = ()) -> FusionView:
    """The unqualified view (``fusion.<b>.<mode>.<leaf>``)."""
    return fusion_views(metrics, platforms)[0]


def fusion_views(metrics: Mapping[str, Any], platforms: Sequence[str] = ()) -> list[FusionView]:
    """One view for the unqualified rows (platform None), then one per platform, in the
    order of ``platforms`` and then of appearance (:mod:`rdusim.rows.fusion`)."""
    views: dict[Optional[str], FusionView] = {None: FusionView()}
    seen: dict[Optional[str], list[str]] = {None: []}
    for r in fusion_rows.from_metrics(metrics):
        plat = r.platform
        if r.is_speedup:
            views.setdefault(plat, FusionView(platform=plat)).speedups.setdefault(r.bench, {})[r.metric] = num(r.value)
        elif r.mode in FUSION_MODES or plat is not None:
            views.setdefault(plat, FusionView(platform=plat)).modes.setdefault((r.bench, r.mode), {})[r.metric] = \
                num(r.value)
        else:
            continue
        seen.setdefault(plat, []).append(r.bench)
    for plat, v in views.items():
        v.benchmarks = ordered([], seen.get(plat, []))
    plats = set(platforms)
    order = [None] + [p for p in platforms if p in views] + [p for p in views if p is not None and p not in plats]
    return [views[p] for p in order]


# ---------------------------------------------------------------- model runs
@dataclass
class ModelView:
    platforms: list[str] = field(default_factory=list)
    values: dict[str, dict[str, Optional[float]]] = field(default_factory=dict)
    breakdown: dict[str, dict[str, Optional[float]]] = field(default_factory=dict)
    # scaling: "P W S" (platform, weight format, machine size) -> {batch: {tpot_s, tokens_per_s_per_device}}
    curves: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.values or self.breakdown)

    def components(self) -> list[str]:
        found = {c for b in self.breakdown.values() for c in b}
        return [c for c in BREAKDOWN if c in found] + sorted(found - set(BREAKDOWN))


def model_view(metrics: Mapping[str, Any], order: list[str]) -> ModelView:
    """The plain-run model rows (:mod:`rdusim.rows.model`): one-segment metrics as values,
    ``breakdown.<part>_s`` as the request's breakdown."""
    v = ModelView()
    seen: list[str] = []
    for r in model_rows.from_metrics(metrics):
        if r.scope is model_rows.ModelScope.SCALING:
            _curve_point(v, r)
            continue
        if r.scope is not model_rows.ModelScope.RUN:
            continue
        part = r.breakdown_part
        if part is not None:
            v.breakdown.setdefault(r.platform, {})[part] = num(r.value)
        elif "." not in r.metric:
            v.values.setdefault(r.platform, {})[r.metric] = num(r.value)
        else:
            continue
        seen.append(r.platform)
    v.platforms = ordered(order, seen)
    return v


def _curve_point(v: ModelView, r) -> None:
    """A scaling row ``<W>.<S>.curve.b<B>.<tpot_s|tokens_per_s_per_device>`` into ``v.curves``."""
    parts = r.metric.split(".")
    if len(parts) == 5 and parts[2] == "curve" and parts[3][:1] == "b" and parts[3][1:].isdigit():
        value = num(r.value)
        if value is not None:
            label = f"{r.platform} {parts[0]} {parts[1]}"
            v.curves.setdefault(label, {}).setdefault(int(parts[3][1:]), {})[parts[4]] = value


def ordered(preferred: list[str], found: list[str]) -> list[str]:
    """Names found, in the workload's order first, then in order of appearance."""
    present = dict.fromkeys(found)
    return [p for p in preferred if p in present] + [p for p in present if p not in preferred]


def platform_order(resolved: Mapping[str, Any], archs: Mapping[str, Any]) -> list[str]:
    """Platforms in the order the workload lists them, then any other arch."""
    plats = resolved.get("platforms") if isinstance(resolved, Mapping) else None
    names = list(plats) if isinstance(plats, Mapping) else []
    return names + [a for a in archs if a not in names]
