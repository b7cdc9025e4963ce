"""Issue 11, item 3: a sweep whose parent alone is killed (SIGKILL, SIGTERM, SIGHUP) leaves no
worker behind, and its lock does not block --resume. Ctrl-C stops workers without tracebacks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rdusim.config.workload import REPO_ROOT

sys.path.insert(0, str(Path(__file__).parent / "data"))
import sweep_fake  # noqa: E402

FAKE_CLI = str(Path(sweep_fake.__file__).resolve())
GRID = ["--grid", "batch_size=1,2,3,4,5,6", "--grid", "output_tokens=4,5,6,7"]     # 24 points


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(c) for c in (task / "children").read_text().split()]
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_workers_die_with_the_parent_and_resume_is_not_blocked(tmp_path, sig):
    out = tmp_path / "sweep"
    env = {**os.environ, "SWEEP_FAKE_DELAY_S": "0.5"}     # 24 points: about 6 s, far longer than the wait
    cmd = [sys.executable, FAKE_CLI, "sweep", "tests/data/sweep_model.yaml", *GRID, "--out", str(out),
           "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    workers: list[int] = []
    while len(workers) < 2 or not (out / "sweep.sqlite").exists():
        assert time.monotonic() < deadline and proc.poll() is None, "sweep did not start its workers"
        workers = _children(proc.pid)
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(proc.pid, sig)                      # the parent alone, not its process group
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = [w for w in workers if _alive(w)]
    for w in alive:                             # clean up before failing
        os.kill(w, signal.SIGKILL)
    assert not alive, f"workers {alive} outlived their parent ({sig.name})"
    resumed = subprocess.run(cmd + ["--resume"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "already stored" in resumed.stdout
    assert [r[0] for r in sweep_fake.table(out)] == list(range(24))


def test_lock_held_by_a_live_sweep_names_its_process(tmp_path):
    from rdusim.errors import InputError
    from rdusim.sweep.store import SweepStore

    with SweepStore.create(tmp_path, {}):
        with pytest.raises(InputError, match=f"process {os.getpid()}"):
            SweepStore.open(tmp_path)
        pid = os.fork()
        if pid == 0:                            # a forked child (a pool worker) holds no lock copy
            from rdusim import outdir
            os._exit(0 if not outdir._HELD else 1)
        assert os.waitpid(pid, 0)[1] == 0
    with SweepStore.open(tmp_path):             # released with the store
        pass


def test_ctrl_c_stops_a_sweep_with_one_line(tmp_path):
    out = tmp_path / "sweep"
    env = {**os.environ, "SWEEP_FAKE_DELAY_S": "0.5"}     # 24 points: about 6 s, far longer than the wait
    cmd = [sys.executable, FAKE_CLI, "sweep", "tests/data/sweep_model.yaml", *GRID, "--out", str(out),
           "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a background shell's SIGINT-ignore is inherited: restore the default
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 30
    while sweep_fake.table(out) == [] if (out / "sweep.sqlite").exists() else True:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)          # Ctrl-C reaches the whole foreground group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "--resume" in err
