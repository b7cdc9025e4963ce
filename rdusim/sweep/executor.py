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
from collections import OrderedDict, deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable, Iterator, Optional

from rdusim.errors import InputError


DEFAULT_CONNECT_TIMEOUT_S = 5.0      # --connect-timeout: how long to try to reach a Dask scheduler


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
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S   # give up on an unreachable scheduler after this

    @classmethod
    def from_flags(cls, executor: Optional[str], workers: Optional[int], scheduler: Optional[str],
                   connect_timeout_s: Optional[float] = None) -> "ExecutorSpec":
        if workers is not None and workers < 1:
            raise InputError("--workers", "workers", "a positive number of worker processes", workers)
        timeout = DEFAULT_CONNECT_TIMEOUT_S if connect_timeout_s is None else connect_timeout_s
        if not (isinstance(timeout, (int, float)) and 0 < timeout <= 3600):
            raise InputError("--connect-timeout", "seconds", "a number of seconds in (0, 3600]", timeout)
        if scheduler is not None:
            if executor == Executor.LOCAL.value:
                raise InputError("--scheduler", "executor", "--executor dask (or no --executor) with --scheduler",
                                 "--executor local")
            return cls(Executor.DASK, workers, scheduler, float(timeout))
        return cls(Executor(executor) if executor else Executor.LOCAL, workers, None, float(timeout))

    @property
    def local_workers(self) -> int:
        return self.workers or os.cpu_count() or 1


class _Backend:
    """Worker slots (one point at a time each): submit a call to a slot, wait for results."""

    slots: int

    def submit(self, fn: Callable, arg: Any, slot: int) -> Any:
        raise NotImplementedError

    def wait_first(self, futures: set) -> tuple[set, set]:
        raise NotImplementedError

    def result(self, future: Any) -> Any:
        raise NotImplementedError


class _LocalBackend(_Backend):
    """One single-process pool per slot, so a slot is always the same process (and the
    engines' per-process caches serve the points sent to it)."""

    def __init__(self, pools: list[cf.ProcessPoolExecutor]):
        self._pools = pools
        self.slots = len(pools)

    def submit(self, fn, arg, slot):
        return self._pools[slot].submit(fn, arg)

    def wait_first(self, futures):
        done, pending = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
        return set(done), set(pending)

    def result(self, future):
        try:
            return future.result()
        except cf.process.BrokenProcessPool as exc:
            raise WorkerLost(f"a local worker process died ({exc})") from None


class _DaskBackend(_Backend):
    """A slot is one thread of one Dask worker; the slot is a placement hint (a task may
    still run elsewhere if that worker is gone)."""

    def __init__(self, client: Any, distributed: Any):
        self._client = client
        self._dist = distributed
        workers = client.scheduler_info(n_workers=-1)["workers"] if _takes_n_workers(client) \
            else client.scheduler_info()["workers"]
        self._slots = [addr for addr, info in sorted(workers.items()) for _ in range(info.get("nthreads", 1))]
        if not self._slots:
            raise InputError("--scheduler", "scheduler", "a Dask cluster with at least one worker", "no workers")
        self.slots = len(self._slots)

    def submit(self, fn, arg, slot):
        return self._client.submit(fn, arg, pure=False, workers=[self._slots[slot]], allow_other_workers=True)

    def wait_first(self, futures):
        done, pending = self._dist.wait(list(futures), return_when="FIRST_COMPLETED")
        return set(done), set(pending)

    def result(self, future):
        try:
            return future.result()
        except self._dist.KilledWorker as exc:
            raise WorkerLost(f"a Dask worker died ({exc})") from None


def worker_init(parent: int) -> None:
    """In each local worker: die with the parent sweep (SIGKILL, SIGTERM or SIGHUP to the parent
    alone must not leave workers behind), and leave Ctrl-C to the parent, which stops the
    sweep and keeps what finished."""
    import signal
    import threading
    import time

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not _die_with_parent():
        def watch() -> None:       # no prctl (not Linux): poll for the parent's death
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(1)
        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:     # the parent died before the death signal was armed
        os._exit(1)


def _die_with_parent() -> bool:
    """Linux: ask the kernel to SIGKILL this process when its parent dies."""
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(1, int(signal.SIGKILL), 0, 0, 0) == 0    # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return False


def _takes_n_workers(client: Any) -> bool:
    import inspect

    return "n_workers" in inspect.signature(client.scheduler_info).parameters


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
        pools = [cf.ProcessPoolExecutor(max_workers=1, initializer=worker_init, initargs=(os.getpid(),))
                 for _ in range(spec.local_workers)]
        try:
            yield _LocalBackend(pools)
        finally:
            for pool in pools:
                pool.shutdown(wait=True, cancel_futures=True)
        return
    dist = _import_distributed()
    if spec.scheduler is not None:
        try:
            client = dist.Client(spec.scheduler, timeout=spec.connect_timeout_s)
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError("--scheduler", "scheduler", "the address of a running Dask scheduler "
                             f"(reached within --connect-timeout {spec.connect_timeout_s:g} s)",
                             f"{spec.scheduler} ({exc})") from None
        with client:
            yield _DaskBackend(client, dist)
        return
    cluster = dist.LocalCluster(n_workers=spec.local_workers, threads_per_worker=1, processes=True,
                                host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR)
    with cluster, dist.Client(cluster) as client:
        yield _DaskBackend(client, dist)


def map_affine(backend: _Backend, fn: Callable, tasks: Iterable[Any], group_of: Callable[[Any], Hashable]
               ) -> Iterator[Any]:
    """Run ``fn`` over ``tasks``, one task in flight per slot, and yield results as they
    finish. Tasks of one group (e.g. the same simulated machine) go to the same slot, in
    order, so the worker's caches serve them; a slot whose group is done takes a group no
    slot has started, else shares the largest remaining one."""
    groups: OrderedDict[Hashable, deque] = OrderedDict()
    for task in tasks:
        groups.setdefault(group_of(task), deque()).append(task)
    slot_group: list[Optional[Hashable]] = [None] * backend.slots

    def next_task(slot: int) -> Any:
        mine = slot_group[slot]
        if mine is not None and groups.get(mine):
            return groups[mine].popleft()
        busy = set(slot_group)
        free = next((g for g, q in groups.items() if q and g not in busy), None)
        if free is None:
            free = max((g for g, q in groups.items() if q), key=lambda g: len(groups[g]), default=None)
        if free is None:
            return None
        slot_group[slot] = free
        return groups[free].popleft()

    pending: dict[Any, int] = {}
    for slot in range(backend.slots):
        task = next_task(slot)
        if task is not None:
            pending[backend.submit(fn, task, slot)] = slot
    while pending:
        done, _ = backend.wait_first(set(pending))
        for fut in done:
            slot = pending.pop(fut)
            yield backend.result(fut)
            task = next_task(slot)
            if task is not None:
                pending[backend.submit(fn, task, slot)] = slot
