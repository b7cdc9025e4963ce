"""Crash safety: SIGKILL a running sweep part-way, then --resume: the same table as an
uninterrupted run, no duplicate, no lost point."""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from rdusim.config.workload import REPO_ROOT
from rdusim.cli import main

sys.path.insert(0, str(Path(__file__).parent / "data"))
import sweep_fake  # noqa: E402

WORKLOAD = "tests/data/sweep_model.yaml"
FAKE_CLI = str(Path(sweep_fake.__file__).resolve())


def _rows(db: Path) -> int:
    if not db.is_file():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute("SELECT COUNT(*) FROM points").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:   # the schema is not there yet
        return 0


def _kill_part_way(kill, cmd: list[str], out: Path, env: dict, at_least: int, total: int) -> int:
    """SIGKILL the sweep's whole process group once ``at_least`` rows are committed; return
    the rows stored at that moment."""
    db = out / "sweep.sqlite"
    kill(cmd, lambda: _rows(db), at_least, env=env, cwd=REPO_ROOT, what="sweep", timeout_s=60)
    done = _rows(db)
    assert at_least <= done < total, "the kill came too late to test anything"
    return done


def test_sigkill_then_resume_gives_the_uninterrupted_table(tmp_path, monkeypatch, kill_part_way):
    grid = ["--grid", "batch_size=1,2,3,4,5,6", "--grid", "output_tokens=4,5,6,7"]   # 24 points
    part, full = tmp_path / "part", tmp_path / "full"
    env = {**os.environ, "SWEEP_FAKE_DELAY_S": "0.1"}
    cmd = [sys.executable, FAKE_CLI, "sweep", WORKLOAD, *grid, "--out", str(part), "--workers", "2"]
    done = _kill_part_way(kill_part_way, cmd, part, env, at_least=4, total=24)
    before = sweep_fake.table(part)
    assert len(before) == done

    sweep_fake.install(monkeypatch)
    assert main(["sweep", WORKLOAD, *grid, "--out", str(full), "--workers", "2"]) == 0
    resumed = subprocess.run(cmd + ["--resume"], cwd=REPO_ROOT, env=os.environ, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"ran {24 - done} points" in resumed.stdout and f"{done} already stored" in resumed.stdout

    after, expected = sweep_fake.table(part), sweep_fake.table(full)
    assert after == expected                         # same rows, same bits
    assert [r[0] for r in after] == list(range(24))  # no duplicate, no lost point
    assert all(r in after for r in before)           # the rows that survived the kill are unchanged
    assert (part / "sweep.csv").read_text().count("\n") == 25


@pytest.mark.skipif(importlib.util.find_spec("rdusim.studies.model_run") is None,
                    reason="the model study (rdusim/studies/model_run.py) is not written yet")
def test_sigkill_real_model_study_then_resume(tmp_path, kill_part_way):
    """The real model study (tests/data/sweep_model.yaml: Llama-2-7B, 16 in / 4 out on SN40L)."""
    grid = ["--grid", "output_tokens=" + ",".join(str(n) for n in range(2, 22))]      # 20 points
    part, full = tmp_path / "part", tmp_path / "full"
    args = ["sweep", WORKLOAD, *grid, "--workers", "2", "--metrics", "model.*"]
    cli = [sys.executable, "-m", "rdusim.cli", *args]
    done = _kill_part_way(kill_part_way, cli + ["--out", str(part)], part, dict(os.environ), at_least=3, total=20)
    resumed = subprocess.run(cli + ["--out", str(part), "--resume"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{done} already stored" in resumed.stdout
    assert main(args + ["--out", str(full)]) == 0          # uninterrupted, in this process
    after = sweep_fake.table(part)
    assert after == sweep_fake.table(full) and [r[0] for r in after] == list(range(20))
    assert all(r[3] == "ok" for r in after)
