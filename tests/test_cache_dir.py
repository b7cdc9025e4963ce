"""--cache-dir: simulated kernels, steps and timings persisted across runs; the results are
the same with a cold, a warm or no cache directory; a bad directory is exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from types import MappingProxyType

import pytest

from rdusim.cache import RunCache

WORKLOAD = "tests/data/coe_small.yaml"


def _rdusim(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rdusim.cli", *args], capture_output=True, text=True)


def test_a_warm_cache_dir_gives_the_same_results(tmp_path):
    cache = tmp_path / "cache"
    outs = []
    for i, extra in enumerate(([], ["--cache-dir", str(cache)], ["--cache-dir", str(cache)])):
        out = tmp_path / f"out{i}"
        proc = _rdusim("run", WORKLOAD, "--out", str(out), *extra)
        assert proc.returncode == 0, proc.stderr
        outs.append(json.loads((out / "results.json").read_text()))
    assert outs[0] == outs[1] == outs[2]
    kinds = {p.name for p in cache.iterdir()}
    assert {"kernel", "step", "inference"} <= kinds          # what the second run could read back


def test_frozen_results_are_persisted_and_read_back(tmp_path):
    value = (MappingProxyType({"a": 1.0}), [1, 2])
    RunCache(tmp_path).get_or_compute("x", ("k", 1), lambda: value)
    again = RunCache(tmp_path)
    got = again.get_or_compute("x", ("k", 1), lambda: pytest.fail("recomputed"))
    assert dict(got[0]) == {"a": 1.0} and isinstance(got[0], MappingProxyType)
    assert again.disk_hits["x"] == 1


def test_a_value_that_cannot_be_pickled_stays_in_memory(tmp_path):
    cache = RunCache(tmp_path)
    assert cache.get_or_compute("x", 1, lambda: (lambda: 0))() == 0
    assert cache.unpersisted["x"] == 1
    assert not any(tmp_path.rglob("*.pickle"))


def test_a_file_as_cache_dir_is_exit_2(tmp_path):
    f = tmp_path / "not_a_dir"
    f.write_text("x")
    proc = _rdusim("run", WORKLOAD, "--out", str(tmp_path / "o"), "--cache-dir", str(f))
    assert proc.returncode == 2
    assert "--cache-dir" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_a_sweep_with_a_cache_dir_matches_one_without(tmp_path):
    rows = []
    for i, extra in enumerate(([], ["--cache-dir", str(tmp_path / "c")])):
        out = tmp_path / f"sw{i}"
        proc = _rdusim("sweep", WORKLOAD, "--grid", "arch.sn40l.socket.ddr.bandwidth_bytes_per_s=50e9,200e9",
                       "--set", "sweep_experts=[]", "--metrics", "*.latency_s", "--workers", "1",
                       "--out", str(out), *extra)
        assert proc.returncode == 0, proc.stderr
        text = (out / "sweep.csv").read_text().splitlines()
        header = text[0].split(",")
        wall = header.index("wall_s")
        rows.append([[c for j, c in enumerate(line.split(",")) if j != wall] for line in text])
    assert rows[0] == rows[1]
    assert any((tmp_path / "c").rglob("*.pickle"))
