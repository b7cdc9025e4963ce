"""The sweep table in SQLite: one row per finished point, committed at once.

``DIR/sweep.sqlite`` holds two tables: ``meta`` (the sweep definition, as JSON) and
``points`` (index, swept values as JSON, seed, status ok|error|oom, chosen metrics as
JSON, error message, wall time). WAL journal, one transaction per point, written by
the parent process only; a lock file keeps two sweeps out of one directory.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from rdusim.errors import InputError
from rdusim.results import atomic_write_text
from rdusim.sweep.point import PointRow, PointStatus, dumps

DB_NAME = "sweep.sqlite"
CSV_NAME = "sweep.csv"
_LOCK_NAME = ".sweep.lock"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    idx     INTEGER PRIMARY KEY,
    params  TEXT    NOT NULL,
    seed    INTEGER NOT NULL,
    status  TEXT    NOT NULL CHECK (status IN ('ok', 'error', 'oom')),
    metrics TEXT    NOT NULL,
    error   TEXT    NOT NULL DEFAULT '',
    wall_s  REAL    NOT NULL
);
"""


def has_store(directory: str | Path) -> bool:
    return (Path(directory) / DB_NAME).is_file()


class SweepStore:
    """Open with ``SweepStore.create(dir, definition)`` or ``SweepStore.open(dir)``; close it
    (or use ``with``) to release the directory lock."""

    def __init__(self, directory: Path, conn: sqlite3.Connection, lock_fd: Optional[int]):
        self._dir = directory
        self._conn = conn
        self._lock_fd = lock_fd

    # -- opening -----------------------------------------------------------
    @classmethod
    def create(cls, directory: str | Path, definition: Mapping[str, Any]) -> "SweepStore":
        d = Path(directory)
        if has_store(d):
            raise InputError(str(d / DB_NAME), "", "a new output directory (or --resume to finish this sweep)",
                             "a sweep table already there")
        d.mkdir(parents=True, exist_ok=True)
        store = cls._connect(d, lock=True)
        with store._conn:
            store._conn.execute("INSERT INTO meta (key, value) VALUES ('definition', ?)", (dumps(definition),))
        return store

    @classmethod
    def open(cls, directory: str | Path, *, lock: bool = True) -> "SweepStore":
        d = Path(directory)
        if not has_store(d):
            raise InputError(str(d), "", f"a sweep output directory holding {DB_NAME}", "no sweep table")
        return cls._connect(d, lock=lock)

    @classmethod
    def _connect(cls, d: Path, *, lock: bool) -> "SweepStore":
        lock_fd = _lock(d) if lock else None
        try:
            conn = sqlite3.connect(str(d / DB_NAME), isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            if lock_fd is not None:
                os.close(lock_fd)
            raise InputError(str(d / DB_NAME), "", "an rdusim sweep SQLite database", str(exc)) from None
        return cls(d, conn, lock_fd)

    def close(self) -> None:
        self._conn.close()
        if self._lock_fd is not None:
            _HELD.discard(self._lock_fd)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "SweepStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading -------------------------------------------------------------
    @property
    def directory(self) -> Path:
        return self._dir

    def definition(self) -> dict:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'definition'").fetchone()
        if row is None:
            raise InputError(str(self._dir / DB_NAME), "meta.definition", "a stored sweep definition", "none")
        return json.loads(row[0])

    def done_indices(self) -> set[int]:
        return {r[0] for r in self._conn.execute("SELECT idx FROM points")}

    def rows(self) -> list[PointRow]:
        cur = self._conn.execute(
            "SELECT idx, params, seed, status, metrics, error, wall_s FROM points ORDER BY idx")
        return [PointRow(index=i, params=json.loads(p), seed=s, status=PointStatus(st),
                         metrics=json.loads(m), error=e, wall_s=w) for i, p, s, st, m, e, w in cur]

    # -- writing -------------------------------------------------------------
    def add(self, row: PointRow) -> None:
        """Commit one finished point (its own transaction: durable once this returns)."""
        with self._conn:
            self._conn.execute(
                "INSERT INTO points (idx, params, seed, status, metrics, error, wall_s) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (row.index, json.dumps(dict(row.params), allow_nan=False), row.seed, row.status.value,
                 dumps(dict(row.metrics)), row.error, row.wall_s))

    def export_csv(self, keys: Iterable[str] | None = None) -> Path:
        """Write DIR/sweep.csv atomically: index, swept keys, seed, status, metrics..., error, wall_s."""
        return atomic_write_text(self._dir / CSV_NAME, table_csv(self.rows(), keys))


def table_csv(rows: list[PointRow], keys: Iterable[str] | None = None) -> str:
    keys = list(keys) if keys is not None else _keys_of(rows)
    metric_keys = sorted({k for r in rows for k in r.metrics})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["index", *keys, "seed", "status", *metric_keys, "error", "wall_s"])
    for r in rows:
        w.writerow([r.index, *(_cell(r.params.get(k)) for k in keys), r.seed, r.status.value,
                    *(_cell(r.metrics.get(k)) for k in metric_keys), r.error, f"{r.wall_s:.6f}"])
    return buf.getvalue()


def _keys_of(rows: list[PointRow]) -> list[str]:
    keys: list[str] = []
    for r in rows:
        keys.extend(k for k in r.params if k not in keys)
    return keys


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


# lock descriptors this process holds. A forked child (a pool worker) closes its copies at
# once, so the lock lives exactly as long as the sweep process itself: a worker outliving a
# killed parent cannot keep a directory locked (the kernel drops a dead process's flock).
_HELD: set[int] = set()


def _close_inherited_locks() -> None:
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited_locks)


def _lock(d: Path) -> int:
    fd = os.open(str(d / _LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        os.close(fd)
        who = f"another rdusim sweep (process {holder})" if holder.isdigit() else "another rdusim sweep"
        raise InputError(str(d), "", "no other sweep running in this output directory",
                         f"it locked by {who}, still running") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _HELD.add(fd)
    return fd
