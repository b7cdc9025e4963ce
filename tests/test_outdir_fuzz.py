"""Issue 21, acceptance: a fuzz test over the states of an --out folder -- missing, empty,
an earlier run's (with or without its report), a sweep's, a report's, the user's own, an
old rdusim's without a manifest; user files in it; another command holding its lock; a
disk that fills up or turns read-only after some bytes -- for `rdusim run` and `rdusim
report`. Whatever happens: exit 0 or 2, no traceback, an error is one line, no user file
removed (or changed without --force), and nothing partial: after an error the folder is
exactly as before; after success every file rdusim wrote is listed in the manifest and
nothing else of rdusim's (staging, temp files, lock) is left. The study is the sweep tests'
instant fake, so every case runs in a fraction of a second (default CI run)."""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rdusim.cli import main
from rdusim.config.workload import REPO_ROOT

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent / "data"))
import sweep_fake  # noqa: E402
from test_outdir import _FullDisk, snapshot  # noqa: E402

WL = "tests/data/sweep_model.yaml"
USER = {"index.html": "u1", "report.md": "u2", "figures/u.png": "u3", "tables/u.csv": "u4", "notes.txt": "u5",
        "results.json": "{\"mine\": 1}", "figures/model_tokens.png": "u6"}
STATES = ("missing", "empty", "run", "run_report", "sweep", "report", "user", "legacy")


def _make(state: str, out: Path, base: Path) -> None:
    from rdusim.sweep.store import SweepStore

    if state == "missing":
        return
    out.mkdir(parents=True)
    if state in ("run", "run_report"):
        assert main(["run", WL, "--out", str(out), "--trace"] + (["--report"] if state == "run_report" else [])) == 0
    elif state == "sweep":
        SweepStore.create(out, {"identity": {}}).close()
    elif state == "report":
        assert main(["report", str(base / "results.json"), "--out", str(out)]) == 0
    elif state == "legacy":                       # an rdusim from before manifests
        (out / "results.json").write_text((base / "results.json").read_text())
        (out / "index.html").write_text("old report")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A finished run elsewhere, whose results.json `rdusim report` renders into the folder."""
    mp = pytest.MonkeyPatch()
    mp.chdir(REPO_ROOT)
    sweep_fake.install(mp)
    d = tmp_path_factory.mktemp("base") / "run"
    assert main(["run", WL, "--out", str(d)]) == 0
    yield d
    mp.undo()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(state=st.sampled_from(STATES),
       user=st.lists(st.sampled_from(sorted(USER)), unique=True, max_size=3),
       command=st.sampled_from(("run", "run_report", "report_here", "report_into")),
       force=st.booleans(), trace=st.booleans(),
       locked=st.booleans(),
       room=st.one_of(st.none(), st.sampled_from([0, 1, 200, 2000, 20000, 60000])),
       err=st.sampled_from([errno.ENOSPC, errno.EROFS, errno.EDQUOT]))
def test_out_folder_states(tmp_path_factory, capsys, monkeypatch, base, state, user, command, force, trace, locked,
                           room, err):
    from rdusim import outdir

    monkeypatch.chdir(REPO_ROOT)
    sweep_fake.install(monkeypatch)
    out = tmp_path_factory.mktemp("case") / "out"
    _make(state, out, base)
    if state != "missing":
        for rel in user:
            if not (out / rel).exists():
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                (out / rel).write_text(USER[rel])
    users = {rel: (out / rel).read_bytes() for rel in user if (out / rel).exists()
             and (out / rel).read_bytes() == USER[rel].encode()}      # the user's, not rdusim's of that name
    capsys.readouterr()
    before = snapshot(out)
    existed = out.exists()
    if command.startswith("run"):
        argv = ["run", WL, "--out", str(out), "--set", "batch_size=3"] + (["--report"] if command == "run_report" else [])
        argv += ["--trace"] if trace else []
    elif command == "report_here":
        argv = ["report", str(out)]
    else:
        argv = ["report", str(base / "results.json"), "--out", str(out)]
    argv += ["--force"] if force else []
    fd = outdir.acquire(out, "sweep") if locked and existed else None
    try:
        if room is not None:
            monkeypatch.setattr(os, "fdopen", _FullDisk(room, err))
        code = main(argv)
    finally:
        monkeypatch.undo()
        outdir.release(out, fd)
    got = capsys.readouterr()
    event(f"exit {code}")                 # pytest --hypothesis-show-statistics: how the cases ended
    assert code in (0, 2), (argv, got.err)
    assert "Traceback" not in got.err and "Traceback" not in got.out
    for rel, data in users.items():                        # no user file removed, none changed without --force
        assert (out / rel).exists(), rel
        if not force:
            assert (out / rel).read_bytes() == data, rel
    leftovers = [p.name for p in out.glob(".*")] if out.exists() else []
    assert not leftovers, leftovers                        # no staging folder, temp file or lock left
    if code == 2:
        assert got.err.count("\n") == 1 and got.err.startswith("rdusim: error: "), got.err
        assert snapshot(out) == before and out.exists() == existed
    else:
        manifest = json.loads((out / "manifest.json").read_text())
        files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
        assert set(manifest["files"]) <= files                 # every listed file exists
        unlisted = files - set(manifest["files"]) - {"manifest.json"}
        assert unlisted <= set(before), unlisted               # nothing of rdusim's unlisted
        assert command != "run_report" or "index.html" in manifest["files"]
    # what must be refused, is
    if locked and existed:
        assert code == 2               # for being locked, or an earlier reason (the folder's kind, its owner)
    kind = {"run": "run", "run_report": "run", "sweep": "sweep", "report": "report"}.get(state)
    wanted = "run" if command.startswith("run") or command == "report_here" else "report"
    if kind is not None and kind != wanted and not (state == "sweep" and command == "report_here"):
        assert code == 2
    if state in ("user", "legacy") and not force and command != "report_here" and (state == "legacy" or user):
        assert code == 2
