"""The same sweep on the local process pool and on Dask distributed (loopback)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from rdusim.cli import main
from rdusim.config.workload import REPO_ROOT

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed (pip install -e '.[dask]')")
import dask  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent / "data"))
import sweep_fake  # noqa: E402

WORKLOAD = "tests/data/sweep_model.yaml"
GRID = ["--grid", "batch_size=1,8,100", "--grid", "output_tokens=4,13", "--grid", "seed=0,1"]


def test_local_cluster_processes_match_local_pool(tmp_path, monkeypatch):
    """`--executor dask` starts a LocalCluster (worker processes on 127.0.0.1); the fake study
    reaches those processes through Dask's worker preload hook (test-side only)."""
    sweep_fake.install(monkeypatch)
    assert main(["sweep", WORKLOAD, *GRID, "--out", str(tmp_path / "local"), "--workers", "2"]) == 0
    with dask.config.set({"distributed.worker.preload": [str(Path(sweep_fake.__file__).resolve())]}):
        assert main(["sweep", WORKLOAD, *GRID, "--out", str(tmp_path / "dask"),
                     "--executor", "dask", "--workers", "2"]) == 0
    local, remote = sweep_fake.table(tmp_path / "local"), sweep_fake.table(tmp_path / "dask")
    assert len(local) == 12 and local == remote
    assert {r[3] for r in remote} == {"ok", "error", "oom"}


def test_scheduler_address(tmp_path, monkeypatch):
    """--scheduler ADDRESS: a cluster someone else started (here in-process, threads)."""
    sweep_fake.install(monkeypatch)
    assert main(["sweep", WORKLOAD, *GRID, "--out", str(tmp_path / "local"), "--workers", "1"]) == 0
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        assert main(["sweep", WORKLOAD, *GRID, "--out", str(tmp_path / "dask"),
                     "--scheduler", cluster.scheduler_address]) == 0
    assert sweep_fake.table(tmp_path / "local") == sweep_fake.table(tmp_path / "dask")


def test_unreachable_scheduler_exits_2(tmp_path, monkeypatch, capsys):
    sweep_fake.install(monkeypatch)
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        assert main(["sweep", WORKLOAD, "--grid", "batch_size=1", "--out", str(tmp_path),
                     "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "Dask scheduler" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("rdusim.studies.model_run") is None,
                    reason="the model study (rdusim/studies/model_run.py) is not written yet")
def test_real_study_local_vs_dask(tmp_path):
    """The real model study in worker processes: a pool and a LocalCluster agree bit for bit."""
    grid = ["--grid", "output_tokens=4,8,16", "--grid", "arch.sn40l.socket.pmu.capacity_bytes=262144,524288"]
    cli = [sys.executable, "-m", "rdusim.cli", "sweep", WORKLOAD, *grid, "--workers", "2"]
    for name, extra in (("local", []), ("dask", ["--executor", "dask"])):
        r = subprocess.run(cli + ["--out", str(tmp_path / name), *extra], cwd=REPO_ROOT, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    assert sweep_fake.table(tmp_path / "local") == sweep_fake.table(tmp_path / "dask")
