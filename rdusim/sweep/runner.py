"""Run a sweep: validate every point, skip the finished ones, run the rest on the chosen
executor, commit each result as it arrives, export the CSV.

``run_point`` runs in a worker (a pool process or a Dask worker) and returns plain data;
only the parent writes to the store.
"""

from __future__ import annotations

import fnmatch
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import rdusim.studies as studies
from rdusim import __version__
from rdusim.cache import RunCache
from rdusim.config.workload import LoadedWorkload, load_workload
from rdusim.config.yamlio import remembering_files
from rdusim.errors import InputError, Terminated
from rdusim.results import plain
from rdusim.sweep.executor import ExecutorSpec, map_affine, open_backend
from rdusim.sweep.grid import expand, validate_points
from rdusim.results import metric_number
from rdusim.sweep.point import PointRow, PointStatus, dumps
from rdusim.sweep.spec import SweepSpec
from rdusim.sweep.store import SweepStore, has_store


@dataclass(frozen=True)
class PointTask:
    """Everything a worker needs to run one point (picklable, plain data)."""

    index: int
    workload: str
    params: tuple[tuple[str, Any], ...]
    fixed: tuple[tuple[str, Any], ...]
    seed: int
    metrics: tuple[str, ...]
    cache_dir: Optional[str] = None     # --cache-dir: the workers' caches persisted there


def metric_selector(globs: tuple[str, ...]) -> Callable[[str], bool]:
    """Whether a metric key is kept: it matches any glob and no ``!glob`` (fnmatch; ``*``
    also matches dots). Only ``!globs`` (or none at all) start from every metric."""
    include = [g for g in globs if not g.startswith("!")]
    exclude = [g[1:] for g in globs if g.startswith("!")]

    def keeps(key: str) -> bool:
        return ((not include or any(fnmatch.fnmatchcase(key, g) for g in include))
                and not any(fnmatch.fnmatchcase(key, g) for g in exclude))
    return keeps


def choose_metrics(metrics: dict[str, Any], globs: tuple[str, ...]) -> dict[str, Any]:
    """The metrics :func:`metric_selector` keeps, in key order."""
    keeps = metric_selector(globs)
    return {k: metric_number(v) for k, v in sorted(metrics.items()) if keeps(k)}


class _Worker:
    """What one worker process keeps for the sweep's lifetime: the run cache its points
    share (graphs, compiled plans, simulated kernels keyed by content, so a point reuses
    whatever an earlier point on this worker computed from the same inputs)."""

    cache: Optional[RunCache] = None
    files: dict = {}          # parsed YAML files (rdusim.config.yamlio.remembering_files)

    @classmethod
    def run_cache(cls, directory: Optional[str] = None) -> RunCache:
        if cls.cache is None or cls.cache.directory != (Path(directory) if directory else None):
            cls.cache = RunCache(directory)
        return cls.cache


def run_point(task: PointTask) -> dict:
    """Run one point in a worker. A bad value, a simulated OOM or a failure of the study is
    a row with its reason, never an exception that ends the sweep."""
    start = time.perf_counter()
    metrics: dict[str, Any] = {}
    oom: list[str] = []
    status, error = PointStatus.OK, ""
    try:
        # files the study reads too (a CoE platform's cluster and its node) are parsed once per worker
        with remembering_files(_Worker.files):
            loaded = load_workload(task.workload, task.fixed + task.params, task.seed)
            # the study may skip parts whose metrics the sweep does not keep (--metrics)
            result = studies.run_study(loaded, cache=_Worker.run_cache(task.cache_dir),
                                       wants=metric_selector(task.metrics) if task.metrics else None)
        metrics = choose_metrics(dict(result.metrics), task.metrics)
        # every run checks memory (rdusim.memory): an OOM marks the point even when the
        # chosen metrics do not include the .oom flags
        oom = [k for k, v in result.metrics.items() if k.endswith(".oom") and v == 1]
    except InputError as exc:
        status, error = PointStatus.ERROR, str(exc)
    except Exception as exc:   # noqa: BLE001 - a failure of the study at this point, recorded with its type
        status, error = PointStatus.ERROR, f"internal error: {type(exc).__name__}: {exc}"
    if oom:
        status, error = PointStatus.OOM, "simulated out of memory: " + ", ".join(oom)
    return PointRow(task.index, dict(task.params), task.seed, status, metrics, error,
                    time.perf_counter() - start).to_message()


@dataclass
class SweepOutcome:
    directory: Path
    total: int
    skipped: int                      # already in the table with a result, ok or oom (--resume)
    retried: int = 0                  # stored as errors, run again (--resume)
    ran: int = 0
    counts: dict[str, int] = field(default_factory=dict)   # status -> rows in the whole table
    wall_s: float = 0.0
    csv: Optional[Path] = None
    interrupted: bool = False
    terminated: bool = False          # interrupted by SIGTERM rather than Ctrl-C
    code_changed: bool = False        # --resume: the rdusim sources differ from the stored digest


def definition(spec: SweepSpec, base: LoadedWorkload) -> dict:
    """The stored definition: the identity of the points and their results (grid, metrics,
    seed, fixed overrides, and the content of the workload and arch files), plus what is
    only descriptive (name, plots) and a digest of the simulator's own sources."""
    return {"identity": {**spec.identity(), "workload": plain(base.raw), "archs": plain(base.archs)},
            "name": spec.name, "workload_file": spec.workload, "description": spec.description,
            "keys": list(spec.keys), "plots": [plain(p) for p in spec.plots], "rdusim_version": __version__,
            "code_digest": source_digest()}


def source_digest() -> str:
    """sha256 over the rdusim package's .py files (paths and contents)."""
    root = Path(studies.__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _check_same(stored: dict, new: dict, db: Path) -> None:
    a, b = stored.get("identity", {}), new["identity"]
    names = {"axes": "grid", "mode": "zip", "metrics": "metrics", "seed": "seed", "fixed": "set",
             "workload": "workload file content", "archs": "arch file content"}
    for part, label in names.items():
        if dumps(a.get(part)) != dumps(b.get(part)):
            raise InputError(str(db), label, "the same sweep definition as the stored one to --resume "
                             "(or a new --out directory)", f"a different {label}")


def run_sweep(spec: SweepSpec, out: Path, executor: ExecutorSpec, *, resume: bool = False,
              progress: Optional[Callable[[int, str], Any]] = None, cache_dir: Optional[str] = None) -> SweepOutcome:
    """Validate, then run every missing point. ``progress(total, label)`` returns a context
    manager with ``.advance()`` (rdusim.progress.Progress)."""
    points = expand(spec)
    base, seeds = validate_points(spec, points)    # every bad key/value fails here, before any run
    new_def = definition(spec, base)
    code_changed = False
    created = not (resume and has_store(out))
    if not created:
        store = SweepStore.open(out)
        try:
            stored = store.definition()
            _check_same(stored, new_def, out / "sweep.sqlite")
            code_changed = stored.get("code_digest") != new_def["code_digest"]
        except BaseException:
            store.close()
            raise
    else:
        store = SweepStore.create(out, new_def)
    try:
        done = store.done_indices()
        failed_before = {r.index for r in store.rows() if r.status == PointStatus.ERROR}
        todo = [PointTask(p.index, spec.workload, p.values, spec.fixed, seeds[p.index], spec.metrics,
                          str(Path(cache_dir).resolve()) if cache_dir else None)
                for p in points if p.index not in done]
        outcome = SweepOutcome(out, total=len(points), skipped=len(points) - len(todo),
                               retried=len(failed_before), code_changed=code_changed)
        start = time.perf_counter()
        try:
            if todo:
                _run(store, todo, executor, progress, spec.name, outcome)
        except KeyboardInterrupt as exc:
            outcome.interrupted = True
            outcome.terminated = isinstance(exc, Terminated)
        outcome.wall_s = time.perf_counter() - start
        rows = store.rows()
        if created and not rows:            # nothing stored (interrupted at once): nothing to keep
            store.discard()
            return outcome
        outcome.counts = {s.value: sum(r.status == s for r in rows) for s in PointStatus}
        outcome.csv = store.export_csv(spec.keys)
    except BaseException:
        # a sweep that stored no point (an unreachable scheduler, a full disk at once) leaves
        # no stub that would block the same command run again
        try:
            empty = created and not store.rows()
        except Exception:                   # noqa: BLE001 -- the table itself failed: keep it
            empty = False
        if empty:
            store.discard()
        raise
    finally:
        store.close()
    return outcome


def _run(store: SweepStore, todo: list[PointTask], executor: ExecutorSpec, progress, label: str,
         outcome: SweepOutcome) -> None:
    bar = progress(len(todo), label) if progress else _NoProgress()
    with bar, open_backend(executor) as backend:
        for msg in map_affine(backend, run_point, todo, machine_of):
            store.add(PointRow.from_message(msg))
            outcome.ran += 1
            bar.advance()


def machine_of(task: PointTask) -> str:
    """Points with the same swept arch values simulate the same machine: one worker takes them
    in turn, so the engines' per-process kernel caches serve all but the first."""
    return dumps([[k, v] for k, v in task.params if k.startswith("arch.")])


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def advance(self, n: int = 1) -> None:
        return None
