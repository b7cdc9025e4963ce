"""The sweep table: one committed row per point, WAL, a lock per directory, CSV export."""

from __future__ import annotations

import csv
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdusim.errors import InputError
from rdusim.sweep.point import PointRow, PointStatus
from rdusim.sweep.store import CSV_NAME, DB_NAME, SweepStore


def _row(i, status=PointStatus.OK, metrics=None, error=""):
    return PointRow(i, {"a.b": i, "c": "x"}, 0, status, metrics if metrics is not None else {"m.t_s": 0.1 * i},
                    error, 0.01)


def test_rows_round_trip_and_stay_after_reopen(tmp_path):
    with SweepStore.create(tmp_path, {"identity": {"x": 1}}) as s:
        s.add(_row(2))
        s.add(_row(0, PointStatus.ERROR, {}, "bad value"))
        s.add(_row(1, PointStatus.OOM, {"m.oom": 1}, "simulated out of memory: m.oom"))
    with SweepStore.open(tmp_path) as s:
        rows = s.rows()
        assert s.definition() == {"identity": {"x": 1}}
        assert s.done_indices() == {1, 2}          # the error point is run again by --resume
    assert [r.index for r in rows] == [0, 1, 2]
    assert rows[0].status == PointStatus.ERROR and rows[0].error == "bad value"
    assert rows[2].metrics == {"m.t_s": 0.2} and rows[2].params == {"a.b": 2, "c": "x"}
    assert list(rows[2].params) == ["a.b", "c"]   # axis order kept


@settings(max_examples=40, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_metric_floats_round_trip_exactly(tmp_path_factory, x):
    d = tmp_path_factory.mktemp("s")
    with SweepStore.create(d, {}) as s:
        s.add(_row(0, metrics={"m": x}))
        assert s.rows()[0].metrics["m"] == x


def test_wal_and_no_duplicate_point(tmp_path):
    with SweepStore.create(tmp_path, {}) as s:
        s.add(_row(0))
        with pytest.raises(sqlite3.IntegrityError):
            s.add(_row(0))
    conn = sqlite3.connect(tmp_path / DB_NAME)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT COUNT(*) FROM points").fetchone()[0] == 1


def test_create_refuses_an_existing_table_and_open_needs_one(tmp_path):
    SweepStore.create(tmp_path, {}).close()
    with pytest.raises(InputError, match="--resume"):
        SweepStore.create(tmp_path, {})
    with pytest.raises(InputError, match="no sweep table"):
        SweepStore.open(tmp_path / "elsewhere")


def test_one_sweep_per_directory(tmp_path):
    with SweepStore.create(tmp_path, {}):
        with pytest.raises(InputError, match="another rdusim sweep"):
            SweepStore.open(tmp_path)
        SweepStore.open(tmp_path, lock=False).close()   # readers (report) need no lock
    SweepStore.open(tmp_path).close()                    # released on close


def test_not_a_database(tmp_path):
    (tmp_path / DB_NAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InputError, match="SQLite"):
        SweepStore.open(tmp_path)


def test_csv_export(tmp_path):
    with SweepStore.create(tmp_path, {}) as s:
        s.add(_row(1, PointStatus.ERROR, {}, 'bad, "quoted" value'))
        s.add(_row(0, metrics={"m.t_s": 0.1, "m.n": 3}))
        path = s.export_csv(["a.b", "c"])
    assert path == tmp_path / CSV_NAME
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == ["index", "a.b", "c", "seed", "status", "m.n", "m.t_s", "error", "wall_s"]
    assert rows[0]["index"] == "0" and rows[0]["m.t_s"] == "0.1" and rows[0]["m.n"] == "3"
    assert rows[1]["status"] == "error" and rows[1]["error"] == 'bad, "quoted" value' and rows[1]["m.t_s"] == ""
    assert not list(tmp_path.glob(".*.tmp"))
