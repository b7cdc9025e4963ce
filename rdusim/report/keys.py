"""Reading the flat dotted metric keys of results.json back into structure.

Only the contract's key shapes are recognised (architecture doc, "results.json");
anything else is left to the all-metrics CSV. Platform, benchmark and scenario
names come from the keys themselves: nothing assumes which platforms exist.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

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
_SPEEDUP = re.compile(r"^coe\.speedup\.(?P<a>[^.]+?)_vs_(?P<c>[^.]+)\.bs(?P<bs>\d+)\.tok(?P<tok>\d+)\.(?P<m>\w+)"
                      r"(?P<ci>\.ci95_low|\.ci95_high)?$")   # a speedup, or a bound of its 95% CI
_SWITCH = re.compile(r"^coe\.speedup\.(?P<a>[^.]+?)_vs_(?P<c>[^.]+)\.switch$")
_CAPACITY = re.compile(r"^coe\.capacity\.(?P<p>[^.]+)\.(?P<m>\w+)$")
_FOOTPRINT = re.compile(r"^coe\.footprint\.(?P<p>[^.]+)\.nodes_for(?P<n>\d+)$")
_SWEEP = re.compile(r"^coe\.(?P<p>[^.]+)\.bs(?P<bs>\d+)\.tok(?P<tok>\d+)\.experts(?P<n>\d+)\.(?P<m>\w+)$")
_SCEN = re.compile(r"^coe\.(?P<p>[^.]+)\.bs(?P<bs>\d+)\.tok(?P<tok>\d+)\.(?P<m>\w+)$")
_RESERVED = {"speedup", "capacity", "footprint"}


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
    v = CoeView()
    seen: list[str] = []
    for key, raw in metrics.items():
        if not key.startswith("coe."):
            continue
        val = num(raw)
        if m := _SPEEDUP.match(key):
            s = Scenario(int(m["bs"]), int(m["tok"]))
            v.speedups.setdefault((m["a"], m["c"], s), {})[m["m"] + (m["ci"] or "")] = val
        elif m := _SWITCH.match(key):
            v.switch_speedups[(m["a"], m["c"])] = val
        elif m := _CAPACITY.match(key):
            v.capacity.setdefault(m["p"], {})[m["m"]] = val
            seen.append(m["p"])
        elif m := _FOOTPRINT.match(key):
            v.footprint.setdefault(m["p"], {})[int(m["n"])] = val
            seen.append(m["p"])
        elif (m := _SWEEP.match(key)) and m["p"] not in _RESERVED:
            s = Scenario(int(m["bs"]), int(m["tok"]))
            v.sweep.setdefault((m["p"], s), {}).setdefault(int(m["n"]), {})[m["m"]] = val
            seen.append(m["p"])
        elif (m := _SCEN.match(key)) and m["p"] not in _RESERVED:
            s = Scenario(int(m["bs"]), int(m["tok"]))
            v.scenarios.setdefault((m["p"], s), {})[m["m"]] = val
            seen.append(m["p"])
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
    """One view for the unqualified keys, then one per platform named in
    ``fusion.<b>.<platform>.<mode>.<leaf>`` keys (``platforms`` says which names are platforms)."""
    views: dict[Optional[str], FusionView] = {None: FusionView()}
    seen: dict[Optional[str], list[str]] = {None: []}
    plats = set(platforms)
    for key, raw in metrics.items():
        if not key.startswith("fusion."):
            continue
        parts = key.split(".")
        if len(parts) < 4:
            continue
        middle, second, leaf = parts[1:-2], parts[-2], parts[-1]
        plat = None
        if len(middle) > 1 and middle[-1] in plats:
            plat, middle = middle[-1], middle[:-1]
        bench = ".".join(middle)
        v = views.setdefault(plat, FusionView(platform=plat))
        if second == "speedup":
            v.speedups.setdefault(bench, {})[leaf] = num(raw)
        elif second in FUSION_MODES or plat is not None:
            v.modes.setdefault((bench, second), {})[leaf] = num(raw)
        else:
            continue
        seen.setdefault(plat, []).append(bench)
    for plat, v in views.items():
        v.benchmarks = ordered([], seen.get(plat, []))
    order = [None] + [p for p in platforms if p in views] + [p for p in views if p is not None and p not in plats]
    return [views[p] for p in order]


# ---------------------------------------------------------------- model runs
@dataclass
class ModelView:
    platforms: list[str] = field(default_factory=list)
    values: dict[str, dict[str, Optional[float]]] = field(default_factory=dict)
    breakdown: dict[str, dict[str, Optional[float]]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.values or self.breakdown)

    def components(self) -> list[str]:
        found = {c for b in self.breakdown.values() for c in b}
        return [c for c in BREAKDOWN if c in found] + sorted(found - set(BREAKDOWN))


_MODEL = re.compile(r"^model\.(?P<p>[^.]+)\.(?P<m>\w+)$")
_BREAK = re.compile(r"^model\.(?P<p>[^.]+)\.breakdown\.(?P<c>\w+?)_s$")


def model_view(metrics: Mapping[str, Any], order: list[str]) -> ModelView:
    v = ModelView()
    seen: list[str] = []
    for key, raw in metrics.items():
        if m := _BREAK.match(key):
            v.breakdown.setdefault(m["p"], {})[m["c"]] = num(raw)
        elif m := _MODEL.match(key):
            v.values.setdefault(m["p"], {})[m["m"]] = num(raw)
        else:
            continue
        seen.append(m["p"])
    v.platforms = ordered(order, seen)
    return v


def ordered(preferred: list[str], found: list[str]) -> list[str]:
    """Names found, in the workload's order first, then in order of appearance."""
    present = dict.fromkeys(found)
    return [p for p in preferred if p in present] + [p for p in present if p not in preferred]


def platform_order(resolved: Mapping[str, Any], archs: Mapping[str, Any]) -> list[str]:
    """Platforms in the order the workload lists them, then any other arch."""
    plats = resolved.get("platforms") if isinstance(resolved, Mapping) else None
    names = list(plats) if isinstance(plats, Mapping) else []
    return names + [a for a in archs if a not in names]
