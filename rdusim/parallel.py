"""Independent parts of one run on several processes: :func:`fork_map`.

A study's independent parts (the CoE study's platforms, the fusion suite's benchmarks,
``rdusim validate``'s studies) can run on the machine's other cores. ``fork_map(fn,
items)`` computes ``fn(item)`` for every item and returns the results in the items'
order, exactly as ``[fn(x) for x in items]`` would: each part is a pure function of its
inputs (the run's cache only avoids recomputation), so the results are the same
bit for bit whichever process computed which part, and the first failing part (in the
items' order) raises what it raised.

How: the calling process forks ``jobs - 1`` workers (POSIX ``fork``: they start with
everything already imported and loaded) and works as one itself. The item numbers wait in
a pipe; every process takes the next one when it is free (parts differ in cost, so
they are not dealt out in advance). A worker pickles its results back when it has no
more to take and leaves with ``os._exit``. A worker that dies without reporting (killed,
out of host memory) loses nothing: the parts it did not report are computed by the
caller. Every part is computed with jobs = 1 (nothing forks twice), workers write to the
same ``--cache-dir`` (its writes are atomic), and keep their in-memory cache entries to
themselves.

The number of processes is the run's :func:`jobs` (1 unless a caller sets it with
:func:`using_jobs`: the CLI's ``--jobs``, by default the usable CPUs). Without a safe
``fork`` (Windows, macOS) everything runs in the caller.

Ambient state, and why: the number of processes is a context variable (set by the CLI's
``--jobs`` around a run) rather than an argument of every study, because it never changes
a result (``fork_map`` returns what the list comprehension would, bit for bit;
tests/test_parallel.py checks it), only how long the run takes.
"""

from __future__ import annotations

import gc
import os
import pickle
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_JOBS: ContextVar[int] = ContextVar("rdusim_jobs", default=1)
# fork without exec is unsafe on macOS (its system libraries may hold locks across it: the
# reason multiprocessing spawns there); elsewhere on POSIX it is what workers start from
_CAN_FORK = hasattr(os, "fork") and sys.platform != "darwin"
_TOKEN = 4            # bytes per item number in the pipe (reads of this size are atomic)


def jobs() -> int:
    """Processes the run may use for its independent parts (1: all in this one)."""
    return _JOBS.get()


@contextmanager
def using_jobs(n: int) -> Iterator[int]:
    """Let the enclosed run use ``n`` processes (at least 1). Scoped: restored on exit."""
    token = _JOBS.set(max(1, int(n)))
    try:
        yield _JOBS.get()
    finally:
        _JOBS.reset(token)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def fork_map(fn: Callable[[T], R], items: Sequence[T], *,
             reported: Callable[[int, R], None] | None = None) -> list[R]:
    """``[fn(x) for x in items]``, on up to :func:`jobs` processes. ``reported(i, result)``
    is called in this process for each part a worker computed, when the worker reports
    (a progress bar's hook: what ``fn`` does to a bar in a worker is not seen here)."""
    items = list(items)
    workers = min(jobs(), len(items)) - 1
    if workers <= 0 or not _CAN_FORK:
        return [fn(x) for x in items]
    return _Pool(fn, items, workers, reported).run()


class _Failed:
    """A part's exception, carried back from a worker (or kept by the caller)."""

    def __init__(self, exc: BaseException):
        self.exc = exc


class _Pool:
    def __init__(self, fn, items, workers: int, reported):
        self.fn, self.items, self.workers, self.reported = fn, items, workers, reported
        self.results: dict[int, object] = {}

    def run(self) -> list:
        n = len(self.items)
        read, write = os.pipe()
        os.write(write, b"".join(i.to_bytes(_TOKEN, "little") for i in range(n)))
        os.close(write)                       # the pipe ends (EOF) when every number is taken
        children: list[tuple[int, int]] = []  # (pid, result pipe)
        try:
            gc.freeze()        # the collector leaves the objects there are now alone: fewer pages copied on write
            try:
                for _ in range(self.workers):
                    children.append(self._fork(read))
            finally:
                gc.unfreeze()
            with using_jobs(1):               # the processes are busy: no part forks again
                self._work(read)
            for pid, fd in children:
                self._collect(pid, fd)
            children = []
        finally:
            os.close(read)
            for pid, fd in children:          # the caller failed or was interrupted: stop the workers
                _stop(pid, fd)
        missing = [i for i in range(n) if i not in self.results]
        with using_jobs(1):
            for i in missing:                 # a worker died without reporting them
                self._one(i)
        failed = [i for i in sorted(self.results) if isinstance(self.results[i], _Failed)]
        if failed:
            raise self.results[failed[0]].exc
        return [self.results[i] for i in range(n)]

    def _fork(self, read: int) -> tuple[int, int]:
        r, w = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (ValueError, OSError):
                pass
        pid = os.fork()
        if pid == 0:                          # the worker
            code = 0
            try:
                os.close(r)
                self.results = {}
                with using_jobs(1):
                    self._work(read)
                payload = _dumps(self.results)
                with os.fdopen(w, "wb") as fh:
                    fh.write(payload)
            except KeyboardInterrupt:
                code = 130
            except BaseException:             # noqa: BLE001 -- nothing may escape a forked child
                code = 1
            finally:
                os._exit(code)
        os.close(w)
        return pid, r

    def _work(self, read: int) -> None:
        while True:
            got = os.read(read, _TOKEN)
            if len(got) < _TOKEN:
                return
            if self._one(int.from_bytes(got, "little")):
                return                         # a part failed: take no more (the others carry on)

    def _one(self, i: int) -> bool:
        try:
            result = self.fn(self.items[i])
        except Exception as exc:              # noqa: BLE001 -- re-raised by the caller, in items' order
            self.results[i] = _Failed(exc)
            return True
        self.results[i] = result
        return False

    def _collect(self, pid: int, fd: int) -> None:
        with os.fdopen(fd, "rb") as fh:
            data = fh.read()
        os.waitpid(pid, 0)
        try:
            got = pickle.loads(data) if data else {}
        except Exception:                     # noqa: BLE001 -- a torn report: its parts are recomputed
            got = {}
        for i, result in sorted(got.items()):
            self.results[i] = result
            if self.reported is not None and not isinstance(result, _Failed):
                self.reported(i, result)


def _dumps(results: dict) -> bytes:
    """The worker's report; a result or exception that cannot be pickled is left out (the
    caller computes that part again, and raises its exception itself)."""
    try:
        return pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:                         # noqa: BLE001
        kept = {}
        for i, r in results.items():
            try:
                pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:                 # noqa: BLE001
                continue
            kept[i] = r
        return pickle.dumps(kept, protocol=pickle.HIGHEST_PROTOCOL)


def _stop(pid: int, fd: int) -> None:
    import signal

    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        pass
    try:
        os.close(fd)
    except OSError:
        pass
    try:
        os.waitpid(pid, 0)
    except OSError:
        pass
