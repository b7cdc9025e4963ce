"""Where points run: a local process pool, or Dask distributed. One code path for both:
``submit(fn, task) -> future``; the parent takes results as they finish and writes the rows.

Dask is an optional extra (``pip install 'rdusim[dask]'``) imported only when asked for.
With ``--scheduler tcp://host:port`` the workers must have rdusim installed and see the
workload and arch files at the same paths as the parent (a shared checkout).
"""

from __future__ import annotations

import concurrent.futures as cf
import enum
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional

from rdusim.errors import InputError


class Executor(enum.Enum):
    LOCAL = "local"
    DASK = "dask"


class WorkerLost(RuntimeError):
    """A worker process died (not a point failure: the sweep stops and can be resumed)."""


@dataclass(frozen=True)
class ExecutorSpec:
    kind: Executor = Executor.LOCAL
    workers: Optional[int] = None        # None: os.cpu_count() (local) / cluster's own (scheduler)
    scheduler: Optional[str] = None      # Dask scheduler address; implies Executor.DASK

    @classmethod
    def from_flags(cls, executor: Optional[str], workers: Optional[int], scheduler: Optional[str]) -> "ExecutorSpec":
        if workers is not None and workers < 1:
            raise InputError("--workers", "workers", "a positive number of worker processes", workers)
        if scheduler is not None:
            if executor == Executor.LOCAL.value:
                raise InputError("--scheduler", "executor", "--executor dask (or no --executor) with --scheduler",
                                 "--executor local")
            return cls(Executor.DASK, workers, scheduler)
        return cls(Executor(executor) if executor else Executor.LOCAL, workers, None)

    @property
    def local_workers(self) -> int:
        return self.workers or os.cpu_count() or 1


class _Backend:
    """A pool of workers: submit a call, wait for the first results."""

    window: int

    def submit(self, fn: Callable, arg: Any) -> Any:
        raise NotImplementedError

    def wait_first(self, futures: set) -> tuple[set, set]:
        raise NotImplementedError

    def result(self, future: Any) -> Any:
        raise NotImplementedError


class _LocalBackend(_Backend):
    def __init__(self, pool: cf.ProcessPoolExecutor, workers: int):
        self._pool = pool
        self.window = 2 * workers

    def submit(self, fn, arg):
        return self._pool.submit(fn, arg)

    def wait_first(self, futures):
        done, pending = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
        return set(done), set(pending)

    def result(self, future):
        try:
            return future.result()
        except cf.process.BrokenProcessPool as exc:
            raise WorkerLost(f"a local worker process died ({exc})") from None


class _DaskBackend(_Backend):
    def __init__(self, client: Any, distributed: Any):
        self._client = client
        self._dist = distributed
        threads = sum(client.nthreads().values()) or 1
        self.window = 2 * threads

    def submit(self, fn, arg):
        return self._client.submit(fn, arg, pure=False)

    def wait_first(self, futures):
        done, pending = self._dist.wait(list(futures), return_when="FIRST_COMPLETED")
        return set(done), set(pending)

    def result(self, future):
        try:
            return future.result()
        except self._dist.KilledWorker as exc:
            raise WorkerLost(f"a Dask worker died ({exc})") from None


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise InputError("--executor", "dask", "the optional Dask extra: pip install 'rdusim[dask]'",
                         "dask.distributed not installed") from None
    return distributed


@contextmanager
def open_backend(spec: ExecutorSpec) -> Iterator[_Backend]:
    if spec.kind == Executor.LOCAL:
        workers = spec.local_workers
        with cf.ProcessPoolExecutor(max_workers=workers) as pool:
            try:
                yield _LocalBackend(pool, workers)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        return
    dist = _import_distributed()
    if spec.scheduler is not None:
        try:
            client = dist.Client(spec.scheduler)   # connect timeout: distributed.comm.timeouts.connect
        except (OSError, TimeoutError) as exc:
            raise InputError("--scheduler", "scheduler", "the address of a running Dask scheduler",
                             f"{spec.scheduler} ({exc})") from None
        with client:
            yield _DaskBackend(client, dist)
        return
    cluster = dist.LocalCluster(n_workers=spec.local_workers, threads_per_worker=1, processes=True,
                                host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR)
    with cluster, dist.Client(cluster) as client:
        yield _DaskBackend(client, dist)


def map_unordered(backend: _Backend, fn: Callable, tasks: Iterable[Any]) -> Iterator[Any]:
    """Run ``fn`` over ``tasks`` with at most ``backend.window`` in flight; yield results as
    they finish (so a huge sweep never sits in memory as futures)."""
    it = iter(tasks)
    pending: set = set()
    for task in it:
        pending.add(backend.submit(fn, task))
        if len(pending) >= backend.window:
            break
    while pending:
        done, pending = backend.wait_first(pending)
        for fut in done:
            yield backend.result(fut)
            nxt = next(it, None)
            if nxt is not None:
                pending.add(backend.submit(fn, nxt))
