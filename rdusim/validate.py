"""``rdusim validate``: the simulator against every published number it knows.

A reference file (``references/*.yaml``, format in the architecture doc) lists
published numbers with citations. Each distinct (workload, set) is simulated
once through :func:`rdusim.studies.run_study`; each reference then compares one
metric of that run with its published value: error = simulated / expected - 1,
PASS when ``|error| <= tolerance``. A metric the run did not produce is a FAIL
that names the metric; so is a study that crashed.

A metric with a 95% confidence interval in the results (``<metric>.ci95_low`` and
``.ci95_high``: the CoE study's means over independent routings) is compared by its
interval: PASS when the interval overlaps ``expected * (1 -/+ tolerance)``, i.e. when
the published number is within tolerance of some value the simulation cannot rule out.
The error shown is still the mean's; the interval is shown beside it.

The printed output keeps the two roles apart: one table of calibration references
(numbers a parameter was fitted to) and one of validation references (predictions), each
with its count, how many are within tolerance and the median and max |error|. The exit
status is 1 if any reference of either role is outside its tolerance.

API: :func:`load_references` (strict; InputError with file and dotted key),
:func:`validation_rows` (run and compare, returns :class:`ValidationRow` s),
:func:`format_table`, :func:`main_validate` (the command; exit 0/1/2), and
:func:`applicable_rows`, which the report uses to show the same table for a
finished run without re-simulating (only references whose workload and
settings are exactly those of the run).
"""

from __future__ import annotations

import enum
import json
import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, Optional, Sequence

from rdusim.config.strict import Ctx, build, positive
from rdusim.config.yamlio import load_yaml
from rdusim.errors import InputError
from rdusim.progress import Progress
from rdusim.rows import lookup


class Role(enum.Enum):
    CALIBRATION = "calibration"   # a parameter was fitted to this number
    VALIDATION = "validation"     # a prediction: nothing was tuned on it


@dataclass(frozen=True)
class Reference:
    id: str
    source: str
    workload: str
    metric: str
    expected: float
    tolerance: float = field(metadata=positive())
    set: dict[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    role: Role = Role.VALIDATION
    note: str = ""

    def __post_init__(self):
        for key in ("id", "source", "workload", "metric"):
            if not getattr(self, key).strip():
                raise ValueError(key, "a non-empty string", getattr(self, key))
        if self.expected == 0:
            raise ValueError("expected", "a non-zero number (the tolerance is relative)", self.expected)

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
    expected: float
    simulated: Optional[float]
    error: Optional[float]          # simulated / expected - 1
    tolerance: float
    passed: bool
    note: str = ""                  # why it failed, when it did
    ci95_low: Optional[float] = None    # the simulated value's 95% interval, when it has one
    ci95_high: Optional[float] = None

    @property
    def status(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def as_dict(self) -> dict:
        return {"id": self.id, "source": self.source, "role": self.role, "metric": self.metric,
                "workload": self.workload, "expected": self.expected, "simulated": self.simulated,
                "error": self.error, "tolerance": self.tolerance, "status": self.status,
                "note": self.note, "ci95_low": self.ci95_low, "ci95_high": self.ci95_high}


def repo_root() -> Path:
    from rdusim.config.workload import REPO_ROOT
    return REPO_ROOT


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
                expected=ref.expected, tolerance=ref.tolerance)
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
    error = value / ref.expected - 1.0
    low, high = _interval(row.ci)
    if low is None:
        passed = abs(error) <= ref.tolerance * (1 + 1e-9)
        note = "" if passed else f"off by {error:+.1%}, outside ±{ref.tolerance:.1%}"
    else:
        lo_ok, hi_ok = (ref.expected * (1 - ref.tolerance), ref.expected * (1 + ref.tolerance))
        lo_ok, hi_ok = min(lo_ok, hi_ok), max(lo_ok, hi_ok)
        slack = 1e-9 * abs(ref.expected)
        passed = low <= hi_ok + slack and high >= lo_ok - slack
        note = "" if passed else (f"off by {error:+.1%} (95% CI {low:.4g}-{high:.4g}), "
                                  f"outside ±{ref.tolerance:.1%}")
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
    from rdusim.cache import RunCache, using
    from rdusim.parallel import fork_map

    if run is None:
        import rdusim.studies as studies
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
    return [compare(loc.ref, *metrics_of[loc.ref.run_key]) for loc in located]


def _run_metrics(locs: list[LocatedReference], run: Callable) -> tuple[Optional[Mapping], str]:
    """The metrics of the run the references ``locs`` share (None and why, if the study failed)."""
    from rdusim.config.workload import load_workload

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
    from rdusim.config.workload import load_workload
    from rdusim.results import plain

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
    return rows, near


def _num(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.4g}"


_ROLE_TITLES = {
    Role.CALIBRATION.value: "Calibration: numbers a parameter was fitted to (passing shows the fit holds, "
                            "not predictive power)",
    Role.VALIDATION.value: "Validation: predictions, nothing was tuned on these",
}


def role_summary(rows: Sequence[ValidationRow]) -> str:
    """``N references, M within tolerance; |error| median X%, max Y%`` for one role."""
    errors = sorted(abs(r.error) for r in rows if r.error is not None)
    passed = sum(r.passed for r in rows)
    text = f"{len(rows)} reference{'s' if len(rows) != 1 else ''}, {passed}/{len(rows)} within tolerance"
    if errors:
        text += f"; |error| median {100 * statistics.median(errors):.1f}%, max {100 * errors[-1]:.1f}%"
    missing = len(rows) - len(errors)
    return text + (f"; {missing} without a simulated value" if missing else "")


def _role_table(rows: Sequence[ValidationRow], source_width: int) -> list[str]:
    head = ("id", "source", "published", "simulated", "95% CI", "error %", "tolerance", "result")
    body = []
    for r in rows:
        src = r.source if len(r.source) <= source_width else r.source[: source_width - 3] + "..."
        err = "-" if r.error is None else f"{r.error * 100:+.1f}"
        ci = "-" if r.ci95_low is None else f"{r.ci95_low:.4g}-{r.ci95_high:.4g}"
        body.append((r.id, src, _num(r.expected), _num(r.simulated), ci, err, f"±{r.tolerance * 100:.0f}%", r.status))
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]
    right = {2, 3, 4, 5, 6}

    def line(cells):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(head), line(["-" * w for w in widths])] + [line(b) for b in body]


def format_table(rows: Sequence[ValidationRow], source_width: int = 44) -> str:
    """One table per role, each with its count and median/max |error|; the roles are never
    added into one score. A simulated value with a 95% CI passes when the interval overlaps
    the tolerance band."""
    out: list[str] = []
    for role in (Role.CALIBRATION.value, Role.VALIDATION.value):
        mine = [r for r in rows if r.role == role]
        if not mine:
            continue
        if out:
            out.append("")
        out += [_ROLE_TITLES[role], ""] + _role_table(mine, source_width)
        out += ["", f"{role}: {role_summary(mine)}"]
    failed = [r for r in rows if not r.passed]
    if failed:
        out.append("")
    for r in failed:
        out.append(f"FAIL {r.id}: {r.note}")
    return "\n".join(out)


def main_validate(ref_files: Sequence[str], *, stream=None, cache_dir: str | None = None) -> int:
    """The ``rdusim validate`` command: 0 all pass, 1 any fails, 2 bad input."""
    err = stream if stream is not None else sys.stderr
    try:
        rows = validation_rows(list(ref_files) or default_reference_files(), stream=err, cache_dir=cache_dir)
    except InputError as exc:
        print(f"rdusim: error: {exc}", file=err)
        return 2
    print(format_table(rows))
    return 0 if all(r.passed for r in rows) else 1
