"""Issue 21, the command line's failure modes, sweeps and lookups by name: an unusable
--cache-dir is one line (exit 2); anything unexpected is one line naming the command and
the file holding its traceback (exit 70); SIGTERM is 143; a sweep whose points all fail
exits 1 and --resume runs its failed points again; an unreachable Dask scheduler fails
fast and leaves no stub; every command finds shipped files by name from any folder.
Each test failed before the fix."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rdusim.cli import build_parser, main
from rdusim.config.workload import REPO_ROOT

sys.path.insert(0, str(Path(__file__).parent / "data"))
import sweep_fake  # noqa: E402

MODEL = "tests/data/sweep_model.yaml"


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    sweep_fake.install(monkeypatch)


def _one_line(err: str, start: str = "rdusim: error: ") -> str:
    assert err.count("\n") == 1 and err.startswith(start) and "Traceback" not in err, err
    return err


def _unwritable_dir(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        d = tmp_path / "ro"
        d.mkdir()
        d.chmod(0o500)
        return d
    d = Path("/sys/kernel")                      # root writes anywhere but into sysfs
    try:
        os.close(os.open(d / ".rdusim-probe", os.O_CREAT | os.O_WRONLY))
    except OSError:
        return d
    pytest.skip("root, and /sys/kernel is writable here")


def test_a_read_only_cache_dir_is_one_line_before_running(tmp_path, capsys, fake, monkeypatch):
    import rdusim.studies

    def no_study(*a, **k):
        raise AssertionError("ran before --cache-dir was checked")
    monkeypatch.setattr(rdusim.studies, "run_study", no_study)
    ro = _unwritable_dir(tmp_path)
    for cmd in (["run", MODEL, "--out", str(tmp_path / "o")],
                ["sweep", MODEL, "--grid", "batch_size=1,2", "--out", str(tmp_path / "s")],
                ["validate", "--refs", "references/nccl.yaml"]):
        assert main(cmd + ["--cache-dir", str(ro)]) == 2, cmd
        assert "--cache-dir: expected a directory rdusim can create and write into" in _one_line(
            capsys.readouterr().err)
    assert not (tmp_path / "o").exists() and not (tmp_path / "s").exists()


def test_a_cache_that_fills_up_warns_and_the_run_goes_on(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    import rdusim.cache

    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(rdusim.cache, "_atomic_write_bytes", full)
    assert main(["run", "tests/data/coe_small.yaml", "--out", str(tmp_path / "o"), "--cache-dir",
                 str(tmp_path / "c"), "--jobs", "1"]) == 0
    err = capsys.readouterr().err
    assert "entries could not be saved (No space left on device); the results do not depend on it" in err
    assert (tmp_path / "o" / "results.json").is_file()


def test_an_unexpected_error_is_one_line_with_the_traceback_in_a_file(tmp_path, capsys, fake, monkeypatch):
    import rdusim.studies

    def bug(*a, **k):
        return 1 / 0
    monkeypatch.setattr(rdusim.studies, "run_study", bug)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    assert main(["run", MODEL, "--out", str(tmp_path / "o")]) == 70
    err = _one_line(capsys.readouterr().err, "rdusim run: internal error (ZeroDivisionError: division by zero)")
    saved = Path(err.rsplit(" ", 1)[1].strip())
    assert saved.parent == tmp_path and saved.name.startswith("rdusim-crash-run-")
    text = saved.read_text()
    assert "Traceback (most recent call last)" in text and "ZeroDivisionError" in text and "rdusim 0." in text
    assert not (tmp_path / "o").exists()


def test_help_documents_every_exit_status():
    text = build_parser().format_help()
    for code in ("0 ", "1 ", "2 ", "70 ", "130 ", "141 ", "143 "):
        assert f"\n  {code}" in text, code
    readme = (REPO_ROOT / "README.md").read_text()
    for code in ("70", "130", "141", "143"):
        assert code in readme.split("`rdusim --help` lists them")[0].rsplit("## Tour", 1)[1]


def test_sigterm_stops_a_sweep_with_143_and_keeps_its_points(tmp_path):
    out = tmp_path / "sweep"
    env = {**os.environ, "SWEEP_FAKE_DELAY_S": "0.3"}
    cmd = [sys.executable, str(Path(sweep_fake.__file__)), "sweep", MODEL, "--grid", "batch_size=1,2,3,4,5,6,7,8",
           "--grid", "output_tokens=4,5", "--out", str(out), "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (out / "sweep.sqlite").exists() or not sweep_fake.table(out):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "terminated: re-run with --resume" in err
    assert not (out / ".rdusim.lock").exists()
    kept = len(sweep_fake.table(out))
    assert 0 < kept < 16
    resumed = subprocess.run(cmd + ["--resume"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0 and f"{kept} already stored" in resumed.stdout


def test_a_sweep_whose_points_all_fail_exits_1_and_resume_retries_them(tmp_path, capsys, fake, monkeypatch):
    out = tmp_path / "s"
    grid = ["--grid", "output_tokens=13", "--grid", "batch_size=1,2"]      # the fake study rejects 13
    assert main(["sweep", MODEL, *grid, "--out", str(out), "--workers", "1"]) == 1
    captured = capsys.readouterr()
    assert "every point of the sweep failed" in captured.err and "0 ok, 2 error" in captured.out
    real = sweep_fake.fake_run_study

    def fixed(loaded, **kw):                                # the cause is fixed: the points now run
        object.__setattr__(loaded.spec, "output_tokens", 12)
        return real(loaded, **kw)
    monkeypatch.setattr("rdusim.studies.run_study", fixed)
    assert main(["sweep", MODEL, *grid, "--out", str(out), "--workers", "1", "--resume"]) == 0
    captured = capsys.readouterr()
    assert "ran 2 points" in captured.out and "2 stored as errors ran again" in captured.out
    assert [r[3] for r in sweep_fake.table(out)] == ["ok", "ok"]


def test_an_unreachable_scheduler_fails_fast_and_leaves_no_stub(tmp_path, capsys, fake):
    pytest.importorskip("distributed")
    out = tmp_path / "s"
    cmd = ["sweep", MODEL, "--grid", "batch_size=1,2", "--out", str(out), "--scheduler", "tcp://127.0.0.1:9",
           "--connect-timeout", "1"]
    for _ in range(2):                                        # the same command again: the same error
        start = time.monotonic()
        assert main(cmd) == 2
        assert time.monotonic() - start < 15
        err = capsys.readouterr().err
        assert "--scheduler: scheduler: expected the address of a running Dask scheduler" in err
        assert "Traceback" not in err
        assert not out.exists()
    assert main(cmd[:-2] + ["--connect-timeout", "nan"]) == 2


def test_a_full_disk_during_a_sweep_is_one_line(tmp_path, capsys, fake, monkeypatch):
    import sqlite3

    from rdusim.sweep import store

    real_add = store.SweepStore.add
    calls = []

    def add(self, row):
        calls.append(row.index)
        if len(calls) > 1:
            raise store._db_error(sqlite3.OperationalError("database or disk is full"), self.directory)
        real_add(self, row)
    monkeypatch.setattr(store.SweepStore, "add", add)
    out = tmp_path / "s"
    assert main(["sweep", MODEL, "--grid", "batch_size=1,2,3", "--out", str(out), "--workers", "1"]) == 2
    assert "database or disk is full" in _one_line(capsys.readouterr().err.splitlines()[-1] + "\n")
    assert len(sweep_fake.table(out)) == 1                  # the point stored before is kept


def test_run_on_a_sweep_file_says_use_sweep(capsys, fake):
    assert main(["run", "workloads/whatif_launch.yaml"]) == 2
    assert "this is a sweep file; use rdusim sweep" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize("argv", [["sweep", "whatif_speculative"], ["sweep", "workloads/whatif_launch.yaml"],
                                  ["validate", "--refs", "references/nccl.yaml"],
                                  ["stack", "show", "stacks/nemo.yaml"], ["stack", "show", "nemo"],
                                  ["arch", "show", "arch/sn40l.yaml"], ["run", "llama2_7b_chat"]])
def test_every_command_finds_shipped_files_from_an_empty_folder(tmp_path, monkeypatch, capsys, argv):
    """What the wheel's users type, from a folder holding nothing: one lookup rule
    (rdusim/paths.py). Sweeps and runs are stopped before simulating; the lookup is what counts."""
    monkeypatch.chdir(tmp_path)
    import rdusim.studies
    import rdusim.validate

    class Stop(BaseException):            # not an error of rdusim's: passes its crash handler
        pass

    def stop(*a, **k):
        raise Stop()
    monkeypatch.setattr(rdusim.studies, "run_study", stop)
    monkeypatch.setattr("rdusim.sweep.command.run_sweep", stop)
    def validate(refs, **k):
        assert refs and all(Path(r).is_file() for r in refs), refs
        raise Stop()
    monkeypatch.setattr(rdusim.validate, "main_validate", validate)
    if argv[0] in ("run", "sweep"):
        argv = argv + ["--out", str(tmp_path / "out")]
    try:
        code = main(argv)
    except Stop:
        code = "reached"
    err = capsys.readouterr().err
    assert "no such file" not in err and code in (0, "reached"), err


@pytest.mark.parametrize("code", [130, 143, 70, 2])
def test_the_rdusim_entry_point_exits_with_mains_status(monkeypatch, code):
    import rdusim.cli as cli

    monkeypatch.setattr(cli, "main", lambda: code)
    monkeypatch.setattr(cli.os, "_exit", lambda c: (_ for _ in ()).throw(SystemExit(c)))
    with pytest.raises(SystemExit) as exc:
        cli.entry()
    assert exc.value.code == code
