"""The sweep definition: which workload, which keys over which values, what to keep.

A sweep comes from the command line (``--grid KEY=V1,V2 ...``) or from a YAML file
whose top-level key is ``sweep:`` so that a study is a committed, re-runnable file::

    sweep:
      name: whatif_sram                   # optional; default: the file's stem
      description: "..."                  # optional
      workload: workloads/fusion_suite.yaml   # repo root, else relative to this file
      grid:                               # dotted keys as in --set, each with a list of values
        arch.sn40l.socket.pmu.capacity_bytes: [262144, 524288, 1048576]
        arch.sn40l.socket.pcu.count: [520, 1040]
      zip: false                          # true: points are zipped, lists of equal length
      metrics: ["fusion.*.speedup.*", "!fusion.*.sn40l.*"]   # fnmatch globs to keep, !globs to drop;
                                          # default all
      seed: 0                             # optional; default the workload's seed
      set: {}                             # fixed overrides applied to every point
      plots:                              # optional, drawn by `rdusim report DIR`
        - {metric: fusion.x.speedup.fused_ho_vs_unfused, x: arch.sn40l.socket.pmu.capacity_bytes,
           by: arch.sn40l.socket.pcu.count, kind: line, logx: true}
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Optional

from rdusim.config.strict import Ctx, build
from rdusim.config.workload import resolve_path
from rdusim.config.yamlio import load_yaml, parse_set
from rdusim.errors import InputError
from rdusim.paths import folder_name_problem


class GridMode(enum.Enum):
    PRODUCT = "product"   # Cartesian product of the axes (last axis varies fastest)
    ZIP = "zip"           # the i-th value of every axis together


class PlotKind(enum.Enum):
    LINE = "line"         # metric vs x, one line per value of `by`
    HEATMAP = "heatmap"   # metric over x (columns) and `by` (rows)


@dataclass(frozen=True)
class Axis:
    key: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class PlotSpec:
    metric: str
    x: str
    by: Optional[str] = None
    kind: PlotKind = PlotKind.LINE
    logx: bool = False
    logy: bool = False
    where: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class SweepSpec:
    name: str
    workload: str                           # path of the workload file, as resolved
    axes: tuple[Axis, ...]
    mode: GridMode = GridMode.PRODUCT
    metrics: tuple[str, ...] = ()           # fnmatch globs; empty keeps every metric
    seed: Optional[int] = None              # None: the workload's own seed
    fixed: tuple[tuple[str, Any], ...] = ()  # overrides applied to every point
    plots: tuple[PlotSpec, ...] = ()
    description: str = ""
    source: str = "--grid"                  # where the grid was written, for error messages

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(a.key for a in self.axes)

    def identity(self) -> dict:
        """What decides the points and their results (not how they are run or drawn)."""
        return {"axes": [[a.key, list(a.values)] for a in self.axes], "mode": self.mode.value,
                "metrics": list(self.metrics), "seed": self.seed,
                "fixed": [[k, v] for k, v in self.fixed]}


# --- the YAML file ---------------------------------------------------------------

@dataclass(frozen=True)
class _SweepFile:
    workload: str
    grid: Mapping[str, Any]
    name: str = ""
    description: str = ""
    zip: bool = False
    metrics: tuple[str, ...] = ()
    seed: Optional[int] = None
    set: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    plots: tuple[PlotSpec, ...] = ()


def is_sweep_file(data: Any) -> bool:
    return isinstance(data, dict) and "sweep" in data


def load_sweep_file(path: str | Path, *, seed: Optional[int] = None,
                    extra_fixed: tuple[tuple[str, Any], ...] = ()) -> SweepSpec:
    file = str(path)
    data = load_yaml(path)
    if not is_sweep_file(data):
        raise InputError(file, "sweep", "a sweep file with a top-level 'sweep:' mapping", "no 'sweep' key")
    others = sorted(set(data) - {"sweep"})
    if others:
        raise InputError(file, others[0], "only the top-level key 'sweep'", f"unknown key {others[0]!r}")
    f = build(_SweepFile, data["sweep"], Ctx(file=file), "sweep")
    axes = []
    for key, values in f.grid.items():
        where = f"sweep.grid.{key}"
        if not isinstance(values, list) or not values:
            raise InputError(file, where, "a non-empty list of values", values)
        axes.append(Axis(key, tuple(_json_value(v, file, where) for v in values)))
    fixed = tuple((k, _json_value(v, file, f"sweep.set.{k}")) for k, v in f.set.items()) + tuple(extra_fixed)
    if f.name and (problem := folder_name_problem(f.name)) is not None:
        raise InputError(file, "sweep.name", problem, repr(f.name))
    spec = SweepSpec(
        name=f.name or Path(file).stem, workload=str(resolve_path(f.workload, file)),
        axes=tuple(axes), mode=GridMode.ZIP if f.zip else GridMode.PRODUCT, metrics=tuple(f.metrics),
        seed=seed if seed is not None else f.seed, fixed=fixed,
        plots=tuple(f.plots),
        description=f.description, source=file)
    check(spec)
    return spec


def parse_grid_flag(item: str) -> Axis:
    """``KEY=V1,V2,...`` (each value a YAML scalar) or ``KEY=[V1, V2, ...]`` (a YAML list)."""
    if "=" not in item:
        raise InputError("--grid", item, "KEY=V1,V2,...", item)
    key, raw = item.split("=", 1)
    key = key.strip()
    if raw.strip().startswith("["):
        import yaml
        try:
            values = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise InputError("--grid", key, "a YAML list such as [1, 2, 3]", raw) from None
        if not isinstance(values, list):
            raise InputError("--grid", key, "a YAML list such as [1, 2, 3]", raw)
    else:
        pieces = raw.split(",")
        if any(not p.strip() for p in pieces):
            raise InputError("--grid", key, "comma-separated values, none empty", raw)
        values = [parse_set(f"{key}={p.strip()}")[1] for p in pieces]
    parse_set(f"{key}=0")   # the key's shape, checked as --set checks it
    if not values:
        raise InputError("--grid", key, "at least one value", raw)
    return Axis(key, tuple(_json_value(v, "--grid", key) for v in values))


def sweep_from_flags(workload: str, grids: list[str], *, zip_: bool, metrics: list[str],
                     seed: Optional[int], sets: list[str], name: str = "") -> SweepSpec:
    if not grids:
        raise InputError("--grid", "", "at least one --grid KEY=V1,V2,... (or a sweep file)", "none")
    spec = SweepSpec(name=name or f"{Path(workload).stem}-sweep", workload=str(workload),
                     axes=tuple(parse_grid_flag(g) for g in grids),
                     mode=GridMode.ZIP if zip_ else GridMode.PRODUCT, metrics=tuple(metrics),
                     seed=seed, fixed=tuple(parse_set(s) for s in sets), source="--grid")
    check(spec)
    return spec


def check(spec: SweepSpec) -> None:
    """Checks on the definition itself (the points are checked by grid.validate_points)."""
    if not spec.axes:
        raise InputError(spec.source, "grid", "at least one swept key", "none")
    seen = set()
    for a in spec.axes:
        if a.key in seen:
            raise InputError(spec.source, a.key, "each swept key once", "it twice")
        seen.add(a.key)
        if a.key in dict(spec.fixed):
            raise InputError(spec.source, a.key, "a key either swept or set, not both", "both")
    if spec.mode == GridMode.ZIP:
        lengths = {a.key: len(a.values) for a in spec.axes}
        if len(set(lengths.values())) > 1:
            first = spec.axes[0]
            odd = next(a for a in spec.axes if len(a.values) != len(first.values))
            raise InputError(spec.source, odd.key,
                             f"{len(first.values)} values to zip with {first.key} (--zip needs equal lengths)",
                             f"{len(odd.values)} values")
    for g in spec.metrics:
        if not isinstance(g, str) or not g.lstrip("!"):
            raise InputError(spec.source, "metrics", "non-empty glob patterns", g)
    for p in spec.plots:
        for role, key in (("x", p.x), ("by", p.by), *(("where", k) for k in p.where)):
            if key is not None and key not in seen:
                raise InputError(spec.source, f"plots.{role}", f"a swept key (one of {sorted(seen)})", key)
        if p.kind == PlotKind.HEATMAP and p.by is None:
            raise InputError(spec.source, "plots.by", "a second swept key for a heat map", None)


def _json_value(v: Any, file: str, key: str) -> Any:
    try:
        json.dumps(v, allow_nan=False)
    except (TypeError, ValueError):
        raise InputError(file, key, "a number, string, boolean or list of them", repr(v)) from None
    return v
