"""Issue 21, "never lose or mix a user's files": rdusim removes only files its manifest
lists, refuses a folder it does not own (unless --force), keeps runs, sweeps and reports
in separate folders, lets one command at a time write a folder, and leaves nothing partial
when a write fails. Each test failed before the fix."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rdusim.cli import main
from rdusim.config.workload import REPO_ROOT

sys.path.insert(0, str(Path(__file__).parent / "data"))
import sweep_fake  # noqa: E402

SMALL = "tests/data/sweep_model.yaml"          # a model workload; the fake study runs it at once
USER = {"index.html": "my page", "report.md": "my notes", "figures/mine.png": "png", "tables/mine.csv": "a,b",
        "notes.txt": "keep me"}


@pytest.fixture(autouse=True)
def _repo_cwd_and_fake_study(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    sweep_fake.install(monkeypatch)


def _user_files(out: Path, files=USER) -> dict[str, str]:
    for rel, text in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    return dict(files)


def snapshot(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} \
        if out.exists() else {}


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rdusim: error: ") and "Traceback" not in err, err
    return err


def test_a_folder_rdusim_does_not_own_is_refused_and_left_alone(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    _user_files(out)
    before = snapshot(out)
    assert main(["run", SMALL, "--out", str(out), "--report"]) == 2
    err = _one_line_error(capsys)
    assert "--force" in err and "index.html" in err
    assert snapshot(out) == before


def test_force_writes_beside_the_users_files_and_removes_none(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    user = _user_files(out)
    assert main(["run", SMALL, "--out", str(out), "--force", "--trace"]) == 0
    for rel, text in user.items():
        assert (out / rel).read_text() == text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "run" and manifest["files"] == ["results.json", "trace.json"]
    # now the folder is rdusim's: the next run needs no --force and still keeps the user's files
    assert main(["run", SMALL, "--out", str(out)]) == 0
    assert all((out / rel).read_text() == text for rel, text in user.items())
    assert not (out / "trace.json").exists()            # rdusim's own, listed: replaced


def test_a_users_file_where_the_report_goes_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", SMALL, "--out", str(out)]) == 0
    (out / "index.html").write_text("mine")             # put there by the user after the run
    before = snapshot(out)
    assert main(["report", str(out)]) == 2
    assert "index.html" in _one_line_error(capsys)
    assert snapshot(out) == before


def test_rendering_replaces_only_listed_report_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", SMALL, "--out", str(out), "--report"]) == 0
    _user_files(out, {"figures/mine.png": "png", "tables/mine.csv": "a,b"})
    assert main(["report", str(out)]) == 0
    assert (out / "figures" / "mine.png").read_text() == "png" and (out / "tables" / "mine.csv").read_text() == "a,b"
    listed = json.loads((out / "manifest.json").read_text())["files"]
    assert "results.json" in listed and "index.html" in listed and "figures/mine.png" not in listed


@pytest.mark.parametrize("name", ["../../escaped", "ABSOLUTE", "", ".", "a/b", ".hidden"])
def test_a_workload_name_is_one_folder_name(tmp_path, capsys, monkeypatch, name):
    absolute = tmp_path / "elsewhere" / "absolute"
    name = str(absolute) if name == "ABSOLUTE" else name
    wl = tmp_path / "wl.yaml"
    text = (REPO_ROOT / SMALL).read_text()
    wl.write_text("\n".join(f"name: {json.dumps(name)}" if ln.startswith("name:") else ln
                            for ln in text.splitlines()))
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(wl)]) == 2
    err = _one_line_error(capsys)
    assert f"{wl}: name: expected one folder name" in err
    assert not (tmp_path / "reports").exists() and not absolute.exists()
    assert main(["run", SMALL, "--set", f"name={json.dumps(name)}", "--out", str(tmp_path / "o")]) == 2
    assert ": name: expected one folder name" in capsys.readouterr().err


def test_a_sweep_name_is_one_folder_name(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(f"sweep:\n  name: ../up\n  workload: {REPO_ROOT / SMALL}\n  grid: {{batch_size: [1, 2]}}\n")
    assert main(["sweep", str(f)]) == 2
    assert "sweep.name: expected one folder name" in _one_line_error(capsys)


def test_a_run_waits_for_no_one_a_locked_folder_is_refused(tmp_path, capsys):
    from rdusim import outdir

    out = tmp_path / "run"
    out.mkdir()
    fd = outdir.acquire(out, "run")           # another command is writing into it
    try:
        assert main(["run", SMALL, "--out", str(out)]) == 2
        assert "locked by another rdusim run" in _one_line_error(capsys)
        assert main(["report", str(out)]) == 2
    finally:
        outdir.release(out, fd)
    assert sorted(p.name for p in out.iterdir()) == []


def test_two_runs_at_once_never_mix(tmp_path):
    """Two processes into one --out: the second is refused while the first writes; the
    folder holds one run's files, each listed once."""
    out = tmp_path / "run"
    env = {**os.environ, "SWEEP_FAKE_DELAY_S": "1.5"}
    cmd = [sys.executable, str(Path(sweep_fake.__file__)), "run", SMALL, "--out", str(out), "--report"]
    first = subprocess.Popen(cmd + ["--set", "batch_size=3"], cwd=REPO_ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (out / ".rdusim.lock").exists():
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.02)
    second = subprocess.run(cmd + ["--set", "batch_size=5"], cwd=REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert second.returncode == 2 and "locked by another rdusim run (process" in second.stderr
    assert second.stderr.count("\n") == 1
    alone = tmp_path / "alone"
    assert main(["run", SMALL, "--out", str(alone), "--report", "--set", "batch_size=3"]) == 0
    for f in ("results.json", "tables/metrics.csv"):             # the first run's results and report
        assert (out / f).read_text() == (alone / f).read_text()
    listed = json.loads((out / "manifest.json").read_text())["files"]
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert on_disk == sorted(listed + ["manifest.json"])          # no lock, no staging, nothing unlisted


class _FullDisk:
    """os.fdopen whose files take ``room`` bytes in all, then fail as a full disk would."""

    def __init__(self, room: int, err: int = errno.ENOSPC):
        self.room, self.err, self._fdopen = room, err, os.fdopen

    def __call__(self, fd, *args, **kwargs):
        f = self._fdopen(fd, *args, **kwargs)
        mode = args[0] if args else kwargs.get("mode", "r")
        return _Metered(f, self) if any(c in mode for c in "wax+") else f

    def spend(self, n: int) -> None:
        if n > self.room:
            self.room = 0
            raise OSError(self.err, os.strerror(self.err))
        self.room -= n


class _Metered:
    def __init__(self, f, disk: _FullDisk):
        self._f, self._disk = f, disk

    def write(self, data):
        self._disk.spend(len(data))
        return self._f.write(data)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()

    def __getattr__(self, name):
        return getattr(self._f, name)


@pytest.mark.parametrize("room", [0, 300, 3000, 30000])
def test_a_full_disk_leaves_the_previous_run_untouched(tmp_path, capsys, monkeypatch, room):
    out = tmp_path / "run"
    assert main(["run", SMALL, "--out", str(out), "--report", "--trace"]) == 0
    before = snapshot(out)
    monkeypatch.setattr(os, "fdopen", _FullDisk(room))
    assert main(["run", SMALL, "--out", str(out), "--report", "--trace", "--set", "batch_size=2"]) == 2
    err = _one_line_error(capsys)
    assert "No space left on device" in err and "nothing was written" in err
    assert snapshot(out) == before                       # no figure outside the manifest, no .tmp
    assert not list(out.glob(".*"))


def test_a_full_disk_in_a_new_folder_leaves_no_folder(tmp_path, capsys, monkeypatch):
    out = tmp_path / "a" / "b"
    monkeypatch.setattr(os, "fdopen", _FullDisk(1000))
    assert main(["run", SMALL, "--out", str(out), "--report"]) == 2
    _one_line_error(capsys)
    assert not (tmp_path / "a").exists()


def test_report_on_a_full_disk_keeps_the_old_report(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(["run", SMALL, "--out", str(out), "--report"]) == 0
    before = snapshot(out)
    monkeypatch.setattr(os, "fdopen", _FullDisk(5000, errno.EROFS))
    assert main(["report", str(out)]) == 2
    assert "Read-only file system" in _one_line_error(capsys)
    assert snapshot(out) == before


def _fake_sweep(out: Path, *extra) -> int:
    return main(["sweep", SMALL, "--grid", "batch_size=1,2", "--out", str(out), "--workers", "1", *extra])


def test_kinds_of_folders_are_not_mixed(tmp_path, capsys):
    run, sweep, elsewhere = tmp_path / "run", tmp_path / "sweep", tmp_path / "elsewhere"
    assert main(["run", SMALL, "--out", str(run)]) == 0
    assert _fake_sweep(sweep) == 0
    assert main(["report", str(run), "--out", str(elsewhere)]) == 0
    capsys.readouterr()
    before = {d: snapshot(d) for d in (run, sweep, elsewhere)}
    for argv, holds in ((["sweep", SMALL, "--grid", "batch_size=1,2", "--out", str(run)], "a run's results"),
                        (["sweep", SMALL, "--grid", "batch_size=1,2", "--out", str(run), "--force"], "a run's"),
                        (["run", SMALL, "--out", str(sweep)], "a sweep"),
                        (["run", SMALL, "--out", str(sweep), "--force"], "a sweep"),
                        (["run", SMALL, "--out", str(elsewhere)], "a report rendered"),
                        (["report", str(run), "--out", str(sweep)], "a sweep"),
                        (["report", str(sweep), "--out", str(run)], "a run's results")):
        assert main(argv) == 2, argv
        assert holds in _one_line_error(capsys), argv
    assert {d: snapshot(d) for d in before} == before


def test_report_of_a_folder_holding_a_run_and_a_sweep_is_refused(tmp_path, capsys):
    out = tmp_path / "both"
    assert _fake_sweep(out) == 0
    (out / "results.json").write_text((REPO_ROOT / "tests/data/report_synthetic/model.json").read_text())
    capsys.readouterr()
    assert main(["report", str(out)]) == 2
    assert "both results.json and sweep.sqlite" in _one_line_error(capsys)


def test_report_beside_a_bare_results_json_adopts_it(tmp_path, capsys):
    src = tmp_path / "given"
    src.mkdir()
    (src / "results.json").write_text((REPO_ROOT / "tests/data/report_synthetic/model.json").read_text())
    assert main(["report", str(src / "results.json")]) == 0
    listed = json.loads((src / "manifest.json").read_text())["files"]
    assert "results.json" in listed and "index.html" in listed
