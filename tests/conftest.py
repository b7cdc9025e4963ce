"""Test-suite settings. Property tests draw the same examples on every run (a derandomized
Hypothesis profile), so the suite is as deterministic as the simulator; set
HYPOTHESIS_PROFILE=explore to draw fresh examples (and let Hypothesis print any failure's seed)."""

import json
import os
import signal
import subprocess
import time

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def run_workload(tmp_path, capsys):
    """``rdusim run WORKLOAD --out <tmp> ARGS...`` in process, exit 0 asserted: (what it
    printed, the metrics of its results.json)."""
    def run(workload: str, args: list[str]):
        from rdusim.cli import main

        out = tmp_path / "run"
        assert main(["run", workload, "--out", str(out), *args]) == 0
        return capsys.readouterr().out, json.loads((out / "results.json").read_text())["metrics"]
    return run


@pytest.fixture
def kill_part_way():
    """``kill(cmd, count, at_least, env=None, cwd=None, what=...)``: start ``cmd`` in its own
    process group and SIGKILL the whole group (parent and workers) once ``count()`` (rows a
    crash-safe command committed) reaches ``at_least``; fails the test if it ends first."""
    def kill(cmd: list, count, at_least: int, env=None, cwd=None, what: str = "command",
             timeout_s: float = 120.0) -> None:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        try:
            while count() < at_least:
                if proc.poll() is not None:
                    pytest.fail(f"{what} ended before it could be killed: {proc.stderr.read().decode()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"{what} too slow to reach the kill point")
                time.sleep(0.01)
            os.killpg(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    return kill
