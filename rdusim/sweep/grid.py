"""Points of a sweep (product or zip of the axes) and their validation before any run."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from rdusim.config.workload import LoadedWorkload, load_workload
from rdusim.config.yamlio import remembering_files
from rdusim.errors import InputError
from rdusim.sweep.spec import GridMode, SweepSpec


@dataclass(frozen=True)
class Point:
    index: int
    values: tuple[tuple[str, Any], ...]    # (swept key, value) in axis order

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.values)

    def label(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.values)


def expand(spec: SweepSpec) -> tuple[Point, ...]:
    """The points in a fixed order: index i is the same point every time the sweep is defined."""
    keys = spec.keys
    if spec.mode == GridMode.ZIP:
        combos = zip(*(a.values for a in spec.axes))
    else:
        combos = itertools.product(*(a.values for a in spec.axes))
    return tuple(Point(i, tuple(zip(keys, combo))) for i, combo in enumerate(combos))


def load_base(spec: SweepSpec) -> LoadedWorkload:
    """The workload with the fixed overrides only (its content identifies the sweep)."""
    return load_workload(spec.workload, spec.fixed, spec.seed)


def validate_points(spec: SweepSpec, points: tuple[Point, ...]) -> tuple[LoadedWorkload, tuple[int, ...]]:
    """Load every point's workload (parsing and checks, no simulation) so that a bad grid key
    or value fails before any point runs, naming the swept key. Returns the base workload
    (fixed overrides only) and each point's seed."""
    with remembering_files():       # every point reads the same files
        base = load_base(spec)
        seeds = []
        for p in points:
            try:
                loaded = load_workload(spec.workload, spec.fixed + p.values, spec.seed)
            except InputError as exc:
                raise _blame(spec, p, exc) from None
            seeds.append(loaded.seed)
    return base, tuple(seeds)


def _local_key(key: str) -> str:
    """``arch.<platform>.a.b`` -> ``a.b`` (the key inside the arch file); others unchanged."""
    parts = key.split(".")
    return ".".join(parts[2:]) if parts[0] == "arch" and len(parts) > 2 else key


def _matches(axis_key: str, exc: InputError) -> bool:
    if exc.key == axis_key or exc.key.startswith(axis_key + ".") or axis_key.startswith(exc.key + "."):
        return True
    local = _local_key(axis_key)
    return bool(exc.key) and (exc.key == local or exc.key.startswith(local + ".")
                              or local.startswith(exc.key + "."))


def _blame(spec: SweepSpec, point: Point, exc: InputError) -> InputError:
    for key, value in point.values:
        if _matches(key, exc):
            return InputError(spec.source, key, exc.expected,
                              f"{value!r} at sweep point {point.index} ({exc.file}: {exc.key}: found {exc.found!r})")
    return InputError(exc.file, exc.key, exc.expected,
                      f"{exc.found!r} at sweep point {point.index} ({point.label()})")
