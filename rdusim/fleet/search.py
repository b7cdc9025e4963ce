"""A planning search as a sweep: every candidate fleet simulated is a point of a sweep
store (rdusim.sweep.store) in ``OUT/search/`` -- committed as it finishes, so a killed
``rdusim plan`` loses only the points in flight and ``--resume`` goes on from the table
(points stored as errors are simulated again); the points run on the sweep's executors (a
local process per worker, or Dask: ``--executor dask``, ``--scheduler ADDRESS``).

The search decides which candidate to simulate next from the rows before it (a group
stops at the first fleet meeting the SLO, rdusim.fleet.plan), so the parent walks each
group, takes a candidate's row from the table where it is stored and sends the others to
the workers, one point in flight per group. Points of one model go to the same worker
while there are as many models as workers (its engine steps serve them all); the rows,
and so the plan, are the same whatever ran where and whatever was resumed.
"""

from __future__ import annotations

from collections import deque
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from rdusim import __version__
from rdusim.errors import InputError
from rdusim.fleet.evaluate import PlanTask, run_plan_point
from rdusim.fleet.plan import Candidate, Space, Walk, row_of, same_nodes_rows, smallest
from rdusim.fleet.spec import LoadedPlan
from rdusim.results import plain
from rdusim.sweep.executor import ExecutorSpec, open_backend
from rdusim.sweep.point import PointRow, PointStatus, dumps
from rdusim.sweep.runner import source_digest
from rdusim.sweep.store import SweepStore, has_store

SEARCH_DIR = "search"          # the sweep folder inside the plan's output folder


class PointFailed(RuntimeError):
    """A candidate's simulation failed (stored as an error: ``--resume`` runs it again)."""


@dataclass
class SearchOutcome:
    rows: list[dict[str, Any]]                 # every configuration of the search, in search order
    best: list[dict[str, Any]]                 # the smallest fleets
    same: list[dict[str, Any]]                 # disaggregated against co-located on the same nodes
    ran: int = 0                               # points simulated by this run
    stored: int = 0                            # points taken from the table (--resume)
    wall_s: float = 0.0
    code_changed: bool = False                 # --resume: the rdusim sources changed since
    by_status: dict[str, int] = field(default_factory=dict)


KEYS = ("decode_replicas", "decode", "prefill_replicas", "prefill", "layout", "tp", "model")


def definition(loaded: LoadedPlan) -> dict:
    """What identifies the points' results (the plan file's content, its arch and cluster
    files, the seed; the space's values per swept key, as a sweep's axes for ``rdusim
    report``), plus what is descriptive."""
    space = Space(loaded)
    values = {k: sorted({c.params()[k] for c in space.candidates()}, key=str) for k in KEYS}
    return {"identity": {"models": list(loaded.models), "plan": plain(loaded.plan), "workload": plain(loaded.serve.raw),
                         "archs": plain(loaded.serve.archs), "clusters": plain(loaded.clusters),
                         "seed": loaded.serve.seed, "axes": [[k, values[k]] for k in KEYS]},
            "name": loaded.serve.spec.name, "kind": "plan", "workload_file": loaded.file, "keys": list(KEYS),
            "plots": [{"metric": m, "x": "decode_replicas", "by": "decode", "logy": True,
                       "where": {"layout": "disaggregated", "prefill_replicas": 1}}
                      for m in ("ttft.p99_s", "tbt.p99_s", "e2e.p99_s")],
            "rdusim_version": __version__, "code_digest": source_digest()}


def open_store(loaded: LoadedPlan, directory: Path, resume: bool) -> tuple[SweepStore, bool]:
    """The search's table: the stored one (``resume``: the same plan, else an error), or a
    new one (an earlier search there, without ``resume``, is replaced). And whether the
    rdusim sources changed since the stored points ran."""
    new = definition(loaded)
    if has_store(directory):
        store = SweepStore.open(directory)
        if not resume:
            store.discard()
        else:
            try:
                stored = store.definition()
                if dumps(stored.get("identity")) != dumps(new["identity"]):
                    raise InputError(str(directory / "sweep.sqlite"), "definition", "the same plan file (and arch, "
                                     "cluster files, seed) as the stored search to --resume (or a new --out)",
                                     "a different plan")
            except BaseException:
                store.close()
                raise
            return store, stored.get("code_digest") != new["code_digest"]
    return SweepStore.create(directory, new), False


class _Driver:
    """Walks the groups, one candidate in flight per group, on the executor's slots."""

    def __init__(self, space: Space, store: SweepStore, executor: ExecutorSpec, cache_dir: Optional[str],
                 advance: Callable[[], Any] = lambda: None):
        self.space, self.store, self.executor = space, store, executor
        self.cache_dir = cache_dir
        self.stored = {r.index: r for r in store.rows() if r.status != PointStatus.ERROR}
        self.before = set(self.stored)         # stored by an earlier run (--resume)
        self.ran = 0
        self.reused: set[int] = set()       # points of an earlier run taken from the table
        self.advance = advance
        self._stack = ExitStack()
        self._backend = None

    def __enter__(self) -> "_Driver":
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def backend(self):
        if self._backend is None:           # no worker is started while the table answers
            self._backend = self._stack.enter_context(open_backend(self.executor))
        return self._backend

    def task(self, c: Candidate) -> PlanTask:
        p = self.space.p
        return PlanTask(c.index, p.file, p.serve.seed, tuple(c.params().items()), self.cache_dir)

    def run(self, walks: list[Walk]) -> list[list[dict[str, Any]]]:
        rows: list[list[dict[str, Any]]] = [[] for _ in walks]
        waiting: deque[tuple[int, Candidate]] = deque()

        def step(gi: int, sent: Optional[dict]) -> None:
            """Send group ``gi`` its last row; take its next candidate from the table, or queue it."""
            while True:
                try:
                    c = next(walks[gi]) if sent is None else walks[gi].send(sent)
                except StopIteration:
                    return
                hit = self.stored.get(c.index)
                if hit is None:
                    waiting.append((gi, c))
                    return
                if c.index in self.before:
                    self.reused.add(c.index)
                sent = row_of(self.space, c, dict(hit.metrics))
                rows[gi].append(sent)

        for gi in range(len(walks)):
            step(gi, None)
        if not waiting:
            return rows
        backend = self.backend()
        owner: list[Optional[str]] = [None] * backend.slots    # the model each slot simulates
        free = list(range(backend.slots))
        flight: dict[Any, tuple[int, Candidate, int]] = {}
        finished: list[PointRow] = []

        def submit() -> None:
            while waiting and free:
                slot = free.pop(0)
                busy = {owner[s] for _, _, s in flight.values()}
                pick = next((k for k, (_, c) in enumerate(waiting) if c.model == owner[slot]), None)
                if pick is None:
                    pick = next((k for k, (_, c) in enumerate(waiting) if c.model not in busy), 0)
                gi, c = waiting[pick]
                del waiting[pick]
                owner[slot] = c.model
                flight[backend.submit(run_plan_point, self.task(c), slot)] = (gi, c, slot)

        while waiting or flight:
            submit()
            done, _ = backend.wait_first(set(flight))
            for fut in sorted(done, key=lambda f: flight[f][1].index):
                gi, c, slot = flight.pop(fut)
                free.append(slot)
                point = PointRow.from_message(backend.result(fut))
                finished.append(point)
                if point.status == PointStatus.ERROR:
                    break
                self.stored[c.index] = point
                row = row_of(self.space, c, dict(point.metrics))
                rows[gi].append(row)
                step(gi, row)
            if not finished[-1].status == PointStatus.ERROR:
                submit()                    # the workers go on while the parent commits
            for point in finished:
                self.store.add(point)
                self.ran += 1
                self.advance()
                if point.status == PointStatus.ERROR:
                    raise PointFailed(f"point {point.index} ({_params(point.params)}): {point.error}")
            finished.clear()
        return rows


def _params(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def search(loaded: LoadedPlan, out: Path, executor: ExecutorSpec, *, resume: bool = False,
           cache_dir: Optional[str] = None, prune: bool = True, progress=None) -> SearchOutcome:
    """The planning search of ``loaded`` with its table in ``out/search``. ``prune``: off
    walks every candidate a search without the pruning would (tests)."""
    import time

    t0 = time.perf_counter()
    space = Space(loaded)
    directory = out / SEARCH_DIR
    store, changed = open_store(loaded, directory, resume)
    with store:
        advance = progress.advance if progress is not None else (lambda: None)
        with _Driver(space, store, executor, cache_dir, advance) as drv:
            rows = [r for g in drv.run([space.walk(g, prune) for g in space.groups()]) for r in g]
            best = smallest(rows)
            pairs = list(space.same_nodes(best))
            unique = list({c.index: c for _, c in pairs}.values())
            coloc = {c.index: r[0] for c, r in zip(unique, drv.run([_one(c) for c in unique]))}
            same = same_nodes_rows(best, {key: coloc[c.index] for key, c in pairs}, list(loaded.plan.slo.limits()))
        store.export_csv(KEYS)
        counts = {s.value: 0 for s in PointStatus}
        for r in store.rows():
            counts[r.status.value] += 1
        return SearchOutcome(rows, best, same, drv.ran, len(drv.reused), time.perf_counter() - t0, changed, counts)


def _one(c: Candidate) -> Walk:
    yield c
