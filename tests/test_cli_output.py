"""Issue 11, item 3: nothing lost, nothing stale. Results are written before anything is
printed; an unusable --out is found before simulating; a run owns its output folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rdusim.cli import main
from rdusim.config.workload import REPO_ROOT

SMALL = "tests/data/coe_small.yaml"


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)


def test_closed_stdout_keeps_the_results(tmp_path):
    """`rdusim run ... | true`: the reader is gone before rdusim prints anything."""
    proc = subprocess.Popen([sys.executable, "-m", "rdusim.cli", "run", SMALL, "--out", str(tmp_path)],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert proc.returncode == 141, err          # 128 + SIGPIPE, the shell convention
    assert "Traceback" not in err and "Exception ignored" not in err
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["workload"]["name"] == "coe_small"


def test_pipe_into_head_through_a_shell(tmp_path):
    cmd = f"set -o pipefail; {sys.executable} -m rdusim.cli run {SMALL} --out {tmp_path} | head -1"
    proc = subprocess.run(["bash", "-c", cmd], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.stdout.startswith("workload: ")
    assert proc.returncode in (0, 141) and "Traceback" not in proc.stderr
    assert (tmp_path / "results.json").is_file()


@pytest.mark.parametrize("make", ["file", "under_file", "read_only"])
def test_unwritable_out_is_found_before_simulating(tmp_path, capsys, make, monkeypatch):
    if make == "file":
        out = tmp_path / "f"
        out.write_text("x")
    elif make == "under_file":
        (tmp_path / "f").write_text("x")
        out = tmp_path / "f" / "sub"
    elif os.geteuid() != 0:
        out = tmp_path / "ro"
        out.mkdir()
        out.chmod(0o500)
    else:                          # root writes into read-only folders: use a folder no one can write (sysfs)
        try:
            os.mkdir("/sys/rdusim-probe")
            os.rmdir("/sys/rdusim-probe")
            pytest.skip("root, and /sys is writable here")
        except OSError:
            out = Path("/sys/rdusim-out")
    import rdusim.studies

    def no_study(*a, **k):
        raise AssertionError("the study ran before --out was checked")
    monkeypatch.setattr(rdusim.studies, "run_study", no_study)
    code = main(["run", SMALL, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("rdusim: error: --out") and err.count("\n") == 1


def test_sweep_checks_its_out_too(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    code = main(["sweep", "tests/data/sweep_model.yaml", "--grid", "batch_size=1,2", "--out", str(tmp_path / "f")])
    assert code == 2 and "--out" in capsys.readouterr().err


def test_a_run_replaces_the_previous_runs_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", SMALL, "--out", str(out), "--report", "--trace"]) == 0
    first = json.loads((out / "manifest.json").read_text())["files"]
    assert {"results.json", "trace.json", "index.html", "report.md"} <= set(first)
    assert any(f.startswith("figures/") for f in first) and any(f.startswith("tables/") for f in first)
    (out / "notes.txt").write_text("mine")                    # not rdusim's: kept
    assert main(["run", SMALL, "--out", str(out)]) == 0        # no report, no trace this time
    capsys.readouterr()
    assert json.loads((out / "manifest.json").read_text())["files"] == ["results.json"]
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert left == ["manifest.json", "notes.txt", "results.json"]
    results = (out / "results.json").stat().st_mtime_ns
    assert all(p.stat().st_mtime_ns >= results for p in out.rglob("*") if p.is_file() and p.name != "notes.txt")


def test_report_rerender_updates_the_manifest(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", SMALL, "--out", str(out), "--trace"]) == 0
    assert main(["report", str(out / "results.json")]) == 0
    files = set(json.loads((out / "manifest.json").read_text())["files"])
    assert {"results.json", "trace.json", "index.html", "report.md"} <= files
    assert all((out / f).is_file() for f in files)


def test_a_failed_run_leaves_the_previous_results(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", SMALL, "--out", str(out)]) == 0
    before = (out / "results.json").read_bytes()
    assert main(["run", SMALL, "--out", str(out), "--set", "batches=0"]) == 2
    assert (out / "results.json").read_bytes() == before
