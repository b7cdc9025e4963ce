"""The sweep table in SQLite: one row per finished point, committed at once.

``DIR/sweep.sqlite`` holds two tables: ``meta`` (the sweep definition, as JSON) and
``points`` (index, swept values as JSON, seed, status ok|error|oom, chosen metrics as
JSON, error message, wall time). WAL journal, one transaction per point, written by
the parent process only; the folder's lock (rdusim.outdir) keeps a second sweep, a run or
a report out of the directory while the sweep runs. A point stored as an error is run
again by ``--resume`` (its row is replaced); ok and oom points are results, kept.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from rdusim import outdir
from rdusim.errors import InputError
from rdusim.results import atomic_write_text
from rdusim.sweep.point import PointRow, PointStatus, dumps

DB_NAME = "sweep.sqlite"
CSV_NAME = "sweep.csv"

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
        try:
            with store._conn:
                store._conn.execute("INSERT INTO meta (key, value) VALUES ('definition', ?)", (dumps(definition),))
            outdir.write_manifest(d, outdir.Kind.SWEEP, outdir.OWN_FILES[outdir.Kind.SWEEP])
        except sqlite3.Error as exc:
            store.close()
            raise _db_error(exc, d) from None
        except BaseException:
            store.close()
            raise
        return store

    def discard(self) -> None:
        """Close and delete the table, its CSV and manifest, then release the lock (a sweep
        that stored no point leaves no stub to block the same command run again)."""
        self._conn.close()
        for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal", CSV_NAME,
                     outdir.MANIFEST):
            (self._dir / name).unlink(missing_ok=True)
        self.close()

    @classmethod
    def open(cls, directory: str | Path, *, lock: bool = True) -> "SweepStore":
        d = Path(directory)
        if not has_store(d):
            raise InputError(str(d), "", f"a sweep output directory holding {DB_NAME}", "no sweep table")
        return cls._connect(d, lock=lock)

    @classmethod
    def _connect(cls, d: Path, *, lock: bool) -> "SweepStore":
        lock_fd = outdir.acquire(d, "sweep") if lock else None
        try:
            conn = sqlite3.connect(str(d / DB_NAME), isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            outdir.release(d, lock_fd)
            raise _db_error(exc, d) from None
        return cls(d, conn, lock_fd)

    def close(self) -> None:
        self._conn.close()             # closing twice is harmless
        outdir.release(self._dir, self._lock_fd)
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
        """Points with a result (ok or oom); error points are run again by ``--resume``."""
        return {r[0] for r in self._conn.execute("SELECT idx FROM points WHERE status != 'error'")}

    def rows(self) -> list[PointRow]:
        cur = self._conn.execute(
            "SELECT idx, params, seed, status, metrics, error, wall_s FROM points ORDER BY idx")
        return [PointRow(index=i, params=json.loads(p), seed=s, status=PointStatus(st),
                         metrics=json.loads(m), error=e, wall_s=w) for i, p, s, st, m, e, w in cur]

    # -- writing -------------------------------------------------------------
    def add(self, row: PointRow) -> None:
        """Commit one finished point (its own transaction: durable once this returns). It
        replaces the point's earlier row only if that one is an error."""
        try:
            with self._conn:
                self._conn.execute("DELETE FROM points WHERE idx = ? AND status = 'error'", (row.index,))
                self._conn.execute(
                    "INSERT INTO points (idx, params, seed, status, metrics, error, wall_s) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (row.index, json.dumps(dict(row.params), allow_nan=False), row.seed, row.status.value,
                     dumps(dict(row.metrics)), row.error, row.wall_s))
        except sqlite3.OperationalError as exc:
            raise _db_error(exc, self._dir) from None

    def export_csv(self, keys: Iterable[str] | None = None) -> Path:
        """Write DIR/sweep.csv atomically: index, swept keys, seed, status, metrics..., error, wall_s."""
        try:
            return atomic_write_text(self._dir / CSV_NAME, table_csv(self.rows(), keys))
        except OSError as exc:
            if exc.errno not in outdir.WRITE_ERRNOS:
                raise
            raise InputError(str(self._dir / CSV_NAME), "", "room to write the sweep's CSV",
                             f"{exc.strerror}; the finished points are in {DB_NAME}") from None


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


def _db_error(exc: sqlite3.Error, d: Path) -> InputError:
    """An SQLite failure as the user's problem it is: a full disk or a read-only folder, or
    a file that is not an rdusim sweep table."""
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("full" in text or "readonly" in text or "read-only" in text
                                                      or "unable to open" in text or "disk I/O" in text):
        return InputError(str(d / DB_NAME), "", "a folder with room to store the sweep's points "
                          "(finished points are kept; --resume goes on)", text)
    return InputError(str(d / DB_NAME), "", "an rdusim sweep SQLite database", text)
