"""``rdusim validate``: the simulator against every published number it knows.

A reference file (``references/*.yaml``, format in ``references/README.md``) lists
published numbers with citations. Each distinct (workload, set) is simulated once
through :func:`rdusim.studies.run_study`; each reference then compares one metric of
that run with its published value, in one of two forms:

- a point, ``expected`` with a relative ``tolerance``: error = simulated / expected - 1,
  PASS when ``|error| <= tolerance``;
- a range, ``range: [low, high]`` (a paper that gives "1.5x to 3x"): IN RANGE when
  ``low <= simulated <= high``, else OUT OF RANGE; no percentage error is computed,
  since the published number is the range and no value inside it is more right.

A metric the run did not produce is a FAIL that names the metric; so is a study that
crashed. A metric with a 95% confidence interval in the results (``<metric>.ci95_low`` /
``.ci95_high``: the CoE study's means over independent routings) passes when the
interval overlaps the accepted band (``expected * (1 -/+ tolerance)`` or the range).

Calibration references are numbers a parameter was fitted to. The parameters say so
themselves: a ``{value, source}`` number of ``arch/*.yaml`` or ``stacks/*.yaml`` carries
``fitted_to: [reference ids]`` (:mod:`rdusim.config.fitted`); parameters fitted to
overlapping references form one fit group (:mod:`rdusim.validate_fits`), and every
row shows its group, the parameters fitted on it and the degrees of freedom left
(calibration points of the group minus its parameters; 0: the fit reproduces its points
by construction).

The printed output (:mod:`rdusim.validate_table`) keeps the two roles apart. The exit
status is 1 if any reference of either role misses.

API: :func:`load_references` (strict; InputError with file and dotted key),
:func:`validation_rows` (run and compare, returns :class:`ValidationRow` s),
:func:`format_table`, :func:`main_validate` (the command; exit 0/1/2), and
:func:`applicable_rows`, which the report uses to show the same table for a
finished run without re-simulating (only references whose workload and
settings are exactly those of the run).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, Optional, Sequence

from rdusim import studies
from rdusim.cache import RunCache, using
from rdusim.config import workload
from rdusim.config.strict import Ctx, build, positive
from rdusim.config.workload import load_workload
from rdusim.config.yamlio import load_yaml
from rdusim.errors import InputError
from rdusim.parallel import fork_map
from rdusim.progress import Progress
from rdusim.results import plain
from rdusim.rows import lookup
from rdusim.validate_fits import shipped_fit_groups
from rdusim.validate_table import format_table, role_summary  # noqa: F401  (the printed tables; re-exported)


class Role(enum.Enum):
    CALIBRATION = "calibration"   # a parameter was fitted to this number
    VALIDATION = "validation"     # a prediction: nothing was tuned on it


@dataclass(frozen=True)
class Reference:
    """A published number: a point (``expected`` +- relative ``tolerance``) or a range."""
    id: str
    source: str
    workload: str
    metric: str
    expected: Optional[float] = None
    tolerance: Optional[float] = field(default=None, metadata=positive())
    range: Optional[tuple[float, ...]] = None      # [low, high], instead of expected and tolerance
    set: dict[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    role: Role = Role.VALIDATION
    note: str = ""

    def __post_init__(self):
        for key in ("id", "source", "workload", "metric"):
            if not getattr(self, key).strip():
                raise ValueError(key, "a non-empty string", getattr(self, key))
        if self.range is not None:
            if self.expected is not None or self.tolerance is not None:
                extra = "expected" if self.expected is not None else "tolerance"
                raise ValueError(extra, "no expected/tolerance beside range (a reference is a point or a range)",
                                 getattr(self, extra))
            if len(self.range) != 2 or not self.range[0] < self.range[1]:
                raise ValueError("range", "[low, high] with low < high", list(self.range))
            return
        for key in ("expected", "tolerance"):
            if getattr(self, key) is None:
                raise ValueError(key, f"key {key!r} to be present (or range: [low, high] instead of expected "
                                 "and tolerance)", "it missing")
        if self.expected == 0:
            raise ValueError("expected", "a non-zero number (the tolerance is relative)", self.expected)

    @property
    def is_range(self) -> bool:
        return self.range is not None

    @property
    def band(self) -> tuple[float, float]:
        """The accepted values: the range, or expected * (1 -/+ tolerance)."""
        if self.range is not None:
            return self.range[0], self.range[1]
        lo, hi = self.expected * (1 - self.tolerance), self.expected * (1 + self.tolerance)
        return min(lo, hi), max(lo, hi)

    @property
    def run_key(self) -> tuple[str, str]:
        """What identifies one simulation: the workload and its overrides."""
        return self.workload, json.dumps(dict(self.set), sort_keys=True, default=str)


@dataclass(frozen=True)
class ReferenceFile:
    references: tuple[Reference, ...]


@dataclass(frozen=True)
class LocatedReference:
    file: str
    index: int
    ref: Reference

    @property
    def where(self) -> str:
        return f"references[{self.index}]"


@dataclass(frozen=True)
class ValidationRow:
    id: str
    source: str
    role: str
    metric: str
    workload: str
    expected: Optional[float]       # a point reference's published value (None for a range)
    simulated: Optional[float]
    error: Optional[float]          # simulated / expected - 1 (None for a range: no percentage error)
    tolerance: Optional[float]
    passed: bool
    note: str = ""                  # why it failed, when it did
    ci95_low: Optional[float] = None    # the simulated value's 95% interval, when it has one
    ci95_high: Optional[float] = None
    range: Optional[tuple[float, float]] = None     # a range reference's published [low, high]
    fit_group: str = ""             # the fit group of a calibration reference ("" for none)
    fit_parameters: int = 0         # parameters fitted on that group
    fit_points: int = 0             # calibration references of that group

    @property
    def is_range(self) -> bool:
        return self.range is not None

    @property
    def status(self) -> str:
        if self.is_range and self.simulated is not None:
            return "IN RANGE" if self.passed else "OUT OF RANGE"
        return "PASS" if self.passed else "FAIL"

    @property
    def dof(self) -> Optional[int]:
        """Degrees of freedom its fit group leaves (points - fitted parameters); None outside a fit."""
        return self.fit_points - self.fit_parameters if self.fit_group else None

    def as_dict(self) -> dict:
        return {"id": self.id, "source": self.source, "role": self.role, "metric": self.metric,
                "workload": self.workload, "expected": self.expected, "simulated": self.simulated,
                "error": self.error, "tolerance": self.tolerance, "status": self.status,
                "note": self.note, "ci95_low": self.ci95_low, "ci95_high": self.ci95_high,
                "range": None if self.range is None else list(self.range), "fit_group": self.fit_group,
                "fit_parameters": self.fit_parameters, "fit_points": self.fit_points, "dof": self.dof}


def repo_root() -> Path:
    return workload.REPO_ROOT        # read at call time: tests point it elsewhere


def default_reference_files() -> list[str]:
    return [str(p) for p in sorted((repo_root() / "references").glob("*.yaml"))]


def workload_path(ref: Reference) -> Path:
    p = Path(ref.workload)
    return p if p.is_absolute() else repo_root() / p


def load_references(files: Sequence[str]) -> list[LocatedReference]:
    """Parse and check reference files strictly; ids must be unique across files."""
    out: list[LocatedReference] = []
    seen: dict[str, str] = {}
    for file in files:
        data = load_yaml(file)
        parsed: ReferenceFile = build(ReferenceFile, data, Ctx(file=str(file)))
        for i, ref in enumerate(parsed.references):
            loc = LocatedReference(str(file), i, ref)
            if ref.id in seen:
                raise InputError(file, f"{loc.where}.id", "an id used only once", f"{ref.id!r}, also in {seen[ref.id]}")
            seen[ref.id] = str(file)
            if not workload_path(ref).is_file():
                raise InputError(file, f"{loc.where}.workload", "a workload file path from the repository root",
                                 ref.workload)
            out.append(loc)
    if not out:
        raise InputError(", ".join(files) or "references/", "references", "at least one reference", "none")
    return out


def compare(ref: Reference, metrics: Optional[Mapping[str, Any]], failure: str = "") -> ValidationRow:
    """One row: the reference against the metrics of its run (None: the run failed)."""
    base = dict(id=ref.id, source=ref.source, role=ref.role.value, metric=ref.metric, workload=ref.workload,
                expected=ref.expected, tolerance=ref.tolerance,
                range=None if ref.range is None else (float(ref.range[0]), float(ref.range[1])))
    if metrics is None:
        return ValidationRow(**base, simulated=None, error=None, passed=False, note=failure or "the run failed")
    row = lookup(metrics, ref.metric)      # the metric's typed row, with its interval
    if row is None:
        return ValidationRow(**base, simulated=None, error=None, passed=False,
                             note=f"metric {ref.metric} missing from the results")
    value = row.value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return ValidationRow(**base, simulated=None, error=None, passed=False,
                             note=f"metric {ref.metric} is not a finite number ({value!r})")
    error = None if ref.is_range else value / ref.expected - 1.0
    lo_ok, hi_ok = ref.band
    slack = 1e-9 * max(abs(lo_ok), abs(hi_ok))
    low, high = _interval(row.ci)
    if low is None:
        if ref.is_range:
            passed = lo_ok - slack <= value <= hi_ok + slack
        else:
            passed = abs(error) <= ref.tolerance * (1 + 1e-9)
    else:
        passed = low <= hi_ok + slack and high >= lo_ok - slack
    ci = "" if low is None else f" (95% CI {low:.4g}-{high:.4g})"
    if passed:
        note = ""
    elif ref.is_range:
        note = f"{value:.4g}{ci} outside the published range {lo_ok:.4g}-{hi_ok:.4g}"
    else:
        note = f"off by {error:+.1%}{ci}, outside ±{ref.tolerance:.1%}"
    return ValidationRow(**base, simulated=float(value), error=error, passed=passed, note=note,
                         ci95_low=low, ci95_high=high)


def _interval(ci: Optional[tuple]) -> tuple[Optional[float], Optional[float]]:
    """A row's 95% interval as floats, or (None, None) when it has none (or not finite)."""
    low, high = ci if ci is not None else (None, None)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high)):
        return float(low), float(high)
    return None, None


def validation_rows(ref_files: Sequence[str], *, stream=None, run: Optional[Callable] = None,
                    cache_dir: str | None = None) -> list[ValidationRow]:
    """Run each distinct (workload, set) once and compare every reference with it."""
    if run is None:
        run = studies.run_study        # looked up now so tests can monkeypatch it
    stream = stream if stream is not None else sys.stderr
    located = load_references(ref_files)
    groups: dict[tuple[str, str], list[LocatedReference]] = {}
    for loc in located:
        groups.setdefault(loc.ref.run_key, []).append(loc)
    # one cache for every run: references on variants of one workload share its steps and kernels;
    # the runs are independent, so they go on the run's processes (rdusim.parallel), in order
    with Progress(len(groups), "validate", stream) as bar, using(RunCache(cache_dir)):
        def metrics(locs: list[LocatedReference]) -> tuple[Optional[Mapping], str]:
            got = _run_metrics(locs, run)
            bar.advance()
            return got

        found = fork_map(metrics, list(groups.values()), reported=lambda i, got: bar.advance())
    metrics_of = dict(zip(groups, found))
    return with_fits([compare(loc.ref, *metrics_of[loc.ref.run_key]) for loc in located])


def _run_metrics(locs: list[LocatedReference], run: Callable) -> tuple[Optional[Mapping], str]:
    """The metrics of the run the references ``locs`` share (None and why, if the study failed)."""
    first = locs[0]
    try:
        loaded = load_workload(workload_path(first.ref), list(first.ref.set.items()))
    except InputError as exc:
        raise InputError(exc.file, exc.key, f"{exc.expected} (loading the workload of reference "
                         f"{first.ref.id}, {first.file}: {first.where})", exc.found) from None
    needed = frozenset(loc.ref.metric for loc in locs)
    try:
        # the study may skip parts no reference reads (a CoE footprint)
        return dict(run(loaded, wants=needed.__contains__).metrics), ""
    except InputError:
        raise
    except Exception as exc:   # a crashing study fails its references; the others still run
        return None, f"the study failed: {type(exc).__name__}: {exc}"


def applicable_rows(result, ref_files: Optional[Sequence[str]] = None) -> list[ValidationRow]:
    """Rows for the references that describe exactly this finished run (same workload
    as resolved, same arch specs), read from its metrics: nothing is simulated."""
    return applicable_references(result, ref_files)[0]


def applicable_references(result, ref_files: Optional[Sequence[str]] = None) -> tuple[list[ValidationRow], list[str]]:
    """(rows of the references matching this run exactly, ids of the references that name
    the same workload but with other settings or arch specs, e.g. arch files changed since)."""
    try:
        located = load_references(ref_files if ref_files is not None else default_reference_files())
    except InputError:
        return [], []
    resolved, archs = plain(result.resolved), plain(result.archs)
    rows, near, cache, names = [], [], {}, {}
    for loc in located:
        key = loc.ref.run_key
        if key not in cache and "name" not in loc.ref.set:   # cheap check first: the workload's name
            path = workload_path(loc.ref)
            if path not in names:
                try:
                    raw = load_yaml(path)
                    names[path] = raw.get("name") if isinstance(raw, dict) else None
                except InputError:
                    names[path] = None
            if names[path] != result.workload_name:
                cache[key] = None
        if key not in cache:
            try:
                wl = load_workload(workload_path(loc.ref), list(loc.ref.set.items()))
            except InputError:
                cache[key] = None
                continue
            same_wl = resolved in (plain(wl.raw), plain(wl.spec))
            cache[key] = same_wl and (not archs or archs == plain(wl.archs))
        if cache[key]:
            rows.append(compare(loc.ref, result.metrics))
        elif cache[key] is False:
            near.append(loc.ref.id)
    try:
        rows = with_fits(rows)
    except InputError:              # a malformed spec file must not break a report
        pass
    return rows, near


def fit_groups_for(rows: Sequence[ValidationRow]) -> list:
    """The fit groups of the shipped arch and stack files, labelled in the order of ``rows``."""
    return shipped_fit_groups(repo_root(), [r.id for r in rows])


def with_fits(rows: Sequence[ValidationRow]) -> list[ValidationRow]:
    """The rows with their fit group, its parameter count and its points filled in."""
    groups = fit_groups_for(rows)
    of = {ref: g for g in groups for ref in g.references}
    return [dataclasses.replace(r, fit_group=of[r.id].label, fit_parameters=len(of[r.id].parameters),
                                fit_points=of[r.id].points) if r.id in of else r for r in rows]


def main_validate(ref_files: Sequence[str], *, stream=None, cache_dir: str | None = None) -> int:
    """The ``rdusim validate`` command: 0 all pass, 1 any fails, 2 bad input."""
    err = stream if stream is not None else sys.stderr
    try:
        rows = validation_rows(list(ref_files) or default_reference_files(), stream=err, cache_dir=cache_dir)
        groups = fit_groups_for(rows)    # a malformed fitted_to in a shipped spec is bad input too
    except InputError as exc:
        print(f"rdusim: error: {exc}", file=err)
        return 2
    print(format_table(rows, groups))
    return 0 if all(r.passed for r in rows) else 1
