"""Running sweeps in-process with a tiny fake study (tests/data/sweep_fake.py): statuses,
metric globs, resume, refusals, executor errors, seeds, plots."""

from __future__ import annotations

import csv
import os
import sqlite3
import sys
from pathlib import Path

import pytest

from rdusim.cli import main

sys.path.insert(0, str(Path(__file__).parent / "data"))
import sweep_fake  # noqa: E402

WORKLOAD = "tests/data/sweep_model.yaml"
GRID = ["--grid", "arch.sn40l.socket.pmu.capacity_bytes=262144,524288",
        "--grid", "batch_size=1,100", "--grid", "output_tokens=4,13"]


@pytest.fixture(autouse=True)
def fake(monkeypatch):
    sweep_fake.install(monkeypatch)


def sweep(out, *extra, grid=GRID):
    return main(["sweep", WORKLOAD, *grid, "--out", str(out), "--workers", "2", *extra])


def test_statuses_metrics_and_csv(tmp_path, capsys):
    assert sweep(tmp_path, "--metrics", "model.*.tpot_s", "*.oom") == 0
    rows = sweep_fake.table(tmp_path)
    assert len(rows) == 8 and [r[0] for r in rows] == list(range(8))
    by_status = {}
    for idx, params, seed, status, metrics, error in rows:
        by_status.setdefault(status, []).append(params)
        if status == "error":
            assert params["output_tokens"] == 13 and "other than 13" in error and metrics == {}
        elif status == "oom":
            assert params["batch_size"] == 100 and "model.sn40l.oom" in error
            assert set(metrics) == {"model.sn40l.tpot_s", "model.sn40l.oom"}   # kept for OOM points too
        else:
            assert set(metrics) == {"model.sn40l.tpot_s", "model.sn40l.oom"} and error == ""
    assert {k: len(v) for k, v in by_status.items()} == {"ok": 2, "error": 4, "oom": 2}
    ok = {p["arch.sn40l.socket.pmu.capacity_bytes"]: m["model.sn40l.tpot_s"]
          for _, p, _, s, m, _ in rows if s == "ok"}
    assert ok[262144] > ok[524288]   # the fake's physics reached the study: the override applied
    out = capsys.readouterr().out
    assert "2 ok, 4 error, 2 oom" in out
    lines = list(csv.DictReader((tmp_path / "sweep.csv").open()))
    assert len(lines) == 8 and lines[0]["arch.sn40l.socket.pmu.capacity_bytes"] == "262144"


def test_bad_grid_fails_before_any_point_runs(tmp_path, monkeypatch, capsys):
    def boom(loaded, *, trace=False, cache=None, wants=None):
        raise AssertionError("a point ran")
    monkeypatch.setattr("rdusim.studies.run_study", boom)
    for bad in (["--grid", "batch_size=1,2", "--grid", "arch.sn40l.socket.pmu.capacityx=1"],
                ["--grid", "batch_size=1,2,-3"], ["--grid", "arch.sn40l.socket.pcu.count=1040,0.5"]):
        assert sweep(tmp_path / "o", grid=bad) == 2
        err = capsys.readouterr().err
        assert bad[-1].split("=")[0] in err
        assert not (tmp_path / "o").exists()


def test_resume_runs_only_missing_points(tmp_path, capsys):
    full, part = tmp_path / "full", tmp_path / "part"
    assert sweep(full) == 0
    assert sweep(part) == 0
    conn = sqlite3.connect(part / "sweep.sqlite")
    with conn:
        conn.execute("DELETE FROM points WHERE idx IN (0, 3, 7)")
    conn.close()
    capsys.readouterr()
    assert sweep(part, "--resume") == 0
    # the 3 missing points, and the 2 other points stored as errors (output_tokens=13), again
    assert "ran 5 points" in capsys.readouterr().out
    assert sweep_fake.table(part) == sweep_fake.table(full)
    assert sweep(part, "--resume") == 0                     # only the failed points run again
    assert "ran 4 points" in capsys.readouterr().out
    assert sweep_fake.table(part) == sweep_fake.table(full)


def test_resume_warns_when_the_code_changed(tmp_path, monkeypatch, capsys):
    assert sweep(tmp_path) == 0
    conn = sqlite3.connect(tmp_path / "sweep.sqlite")
    with conn:
        conn.execute("DELETE FROM points WHERE idx = 5")
    conn.close()
    monkeypatch.setattr("rdusim.sweep.runner.source_digest", lambda: "another version")
    capsys.readouterr()
    assert sweep(tmp_path, "--resume") == 0
    assert "sources changed" in capsys.readouterr().err


def test_resume_without_table_runs_everything(tmp_path):
    assert sweep(tmp_path / "new", "--resume") == 0
    assert len(sweep_fake.table(tmp_path / "new")) == 8


@pytest.mark.parametrize("change", [
    ["--metrics", "model.*"], ["--seed", "3"], ["--set", "prompt_tokens=32"],
    ["--set", "arch.sn40l.socket.pcu.count=520"], "grid", "zip"])
def test_resume_refuses_a_different_definition(tmp_path, capsys, change):
    grid = [g for g in GRID[:2]] + ["--grid", "batch_size=1,2"]
    assert sweep(tmp_path, grid=grid) == 0
    if change == "grid":
        grid, change = grid[:-1] + ["batch_size=1,3"], []
    elif change == "zip":
        change = ["--zip"]
    capsys.readouterr()
    assert sweep(tmp_path, "--resume", *change, grid=grid) == 2
    assert "same sweep definition" in capsys.readouterr().err


def test_resume_refuses_changed_workload_content(tmp_path, capsys):
    wl = tmp_path / "wl.yaml"
    wl.write_text(Path(WORKLOAD).read_text())
    args = ["sweep", str(wl), "--grid", "batch_size=1,2", "--out", str(tmp_path / "o"), "--workers", "1"]
    assert main(args) == 0
    wl.write_text(Path(WORKLOAD).read_text().replace("prompt_tokens: 16", "prompt_tokens: 17"))
    assert main(args + ["--resume"]) == 2
    assert "workload file content" in capsys.readouterr().err


def test_existing_table_needs_resume(tmp_path, capsys):
    assert sweep(tmp_path) == 0
    assert sweep(tmp_path) == 2
    assert "--resume" in capsys.readouterr().err


def test_study_failure_is_a_row_not_the_end(tmp_path, monkeypatch):
    def flaky(loaded, *, trace=False, cache=None, wants=None):
        if loaded.spec.batch_size == 2:
            return 1 / 0
        return sweep_fake.fake_run_study(loaded)
    monkeypatch.setattr("rdusim.studies.run_study", flaky)
    assert sweep(tmp_path, grid=["--grid", "batch_size=1,2,3"]) == 0
    rows = sweep_fake.table(tmp_path)
    assert [r[3] for r in rows] == ["ok", "error", "ok"]
    assert rows[1][5].startswith("internal error: ZeroDivisionError")


def test_dead_worker_stops_the_sweep_and_keeps_finished_points(tmp_path, monkeypatch, capsys):
    def dies(loaded, *, trace=False, cache=None, wants=None):
        if loaded.spec.batch_size == 3:
            os._exit(9)
        return sweep_fake.fake_run_study(loaded)
    monkeypatch.setattr("rdusim.studies.run_study", dies)
    code = main(["sweep", WORKLOAD, "--grid", "batch_size=1,2,3,4", "--out", str(tmp_path), "--workers", "1"])
    assert code == 1
    assert "--resume" in capsys.readouterr().err
    assert [r[0] for r in sweep_fake.table(tmp_path)] == [0, 1]
    monkeypatch.setattr("rdusim.studies.run_study", sweep_fake.fake_run_study)
    assert main(["sweep", WORKLOAD, "--grid", "batch_size=1,2,3,4", "--out", str(tmp_path), "--resume"]) == 0
    assert [r[0] for r in sweep_fake.table(tmp_path)] == [0, 1, 2, 3]


def test_same_seed_same_bits_any_worker_count(tmp_path):
    grid = ["--grid", "batch_size=1,2,3", "--grid", "output_tokens=4,5"]
    assert main(["sweep", WORKLOAD, *grid, "--out", str(tmp_path / "a"), "--workers", "1"]) == 0
    assert main(["sweep", WORKLOAD, *grid, "--out", str(tmp_path / "b"), "--workers", "2"]) == 0
    assert main(["sweep", WORKLOAD, *grid, "--out", str(tmp_path / "c"), "--seed", "7"]) == 0
    a, b, c = (sweep_fake.table(tmp_path / d) for d in "abc")
    assert a == b
    assert all(r[2] == 7 for r in c) and [r[4] for r in c] != [r[4] for r in a]


def test_seed_can_be_swept(tmp_path):
    assert sweep(tmp_path, grid=["--grid", "seed=0,1,2"]) == 0
    rows = sweep_fake.table(tmp_path)
    assert [r[2] for r in rows] == [0, 1, 2]
    assert len({r[4]["model.sn40l.tpot_s"] for r in rows}) == 3


@pytest.mark.parametrize("flags, needle", [
    (["--executor", "local", "--scheduler", "tcp://127.0.0.1:1"], "--scheduler"),
    (["--workers", "0"], "--workers"),
])
def test_bad_executor_flags_exit_2(tmp_path, capsys, flags, needle):
    assert sweep(tmp_path, *flags) == 2
    assert needle in capsys.readouterr().err


def test_dask_missing_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)   # import distributed -> ImportError
    assert sweep(tmp_path, "--executor", "dask") == 2
    assert "pip install 'rdusim[dask]'" in capsys.readouterr().err


def test_report_draws_plots_from_the_table(tmp_path, capsys):
    assert sweep(tmp_path, "--metrics", "model.sn40l.tpot_s") == 0
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "plots")]) == 0
    pngs = sorted(p.name for p in (tmp_path / "plots" / "figures").glob("*.png"))
    assert len(pngs) == 2 and any("heatmap" in p for p in pngs)
    line = next((tmp_path / "plots" / "tables").glob("*_vs_*.csv")).read_text().splitlines()
    assert line[0] == "arch.sn40l.socket.pmu.capacity_bytes,batch_size=1,batch_size=100"
    assert len(line) == 3


def test_sweep_file_plots_and_default_out_name(tmp_path, capsys):
    f = tmp_path / "mystudy.yaml"
    f.write_text(f"""
sweep:
  workload: {WORKLOAD}
  grid: {{batch_size: [1, 2, 4], arch.sn40l.socket.pcu.count: [520, 1040]}}
  metrics: ["model.sn40l.*_s"]
  plots:
    - {{metric: "model.sn40l.*_s", x: batch_size, where: {{arch.sn40l.socket.pcu.count: 1040}}, logy: true}}
""")
    out = tmp_path / "out"
    assert main(["sweep", str(f), "--out", str(out), "--workers", "1"]) == 0
    assert main(["report", str(out)]) == 0
    pngs = list(out.glob("**/*.png"))
    assert len(pngs) == 1                   # one line per matching metric, on one plot
    table = list(csv.reader(next(out.glob("tables/sweep_00_*.csv")).open()))
    assert table[0] == ["batch_size", "model.sn40l.latency_s", "model.sn40l.tpot_s", "model.sn40l.ttft_s"]


def test_report_on_a_folder_without_a_sweep_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "sweep.sqlite" in capsys.readouterr().err


def test_oom_marks_the_point_even_when_the_oom_flags_are_not_chosen(tmp_path):
    assert sweep(tmp_path, "--metrics", "model.*.tpot_s") == 0
    rows = sweep_fake.table(tmp_path)
    oom = [(p, m, e) for _, p, _, s, m, e in rows if s == "oom"]
    assert len(oom) == 2 and all(p["batch_size"] == 100 and "model.sn40l.oom" in e for p, m, e in oom)
    assert all(set(m) == {"model.sn40l.tpot_s"} for _, m, _ in oom)
