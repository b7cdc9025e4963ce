"""The fast paths change no result: a study run with the closed forms and the run cache
equals (results.json data, records included; every number within 1e-9 relative, as a
closed form sums in another order than the events do, everything else exactly) the same
study evaluated with the SimPy reference models; sweep points that share a worker's cache
equal points run alone.

Each variant runs in a fresh process, so nothing cached in one can leak into the other.
The shipped studies (coe150, both fusion suites) and a coe150 sweep are behind ``slow``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, sys
from rdusim.cache import RunCache
from rdusim.config.workload import load_workload
from rdusim.config.yamlio import parse_set
from rdusim.engine import evaluation
from rdusim.studies import run_study

workload, mode, points = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
shared = RunCache()
out = []
for sets in points:
    loaded = load_workload(workload, [parse_set(s) for s in sets])
    if mode == "reference":
        with evaluation.reference():
            result = run_study(loaded)
    else:
        result = run_study(loaded, cache=shared)
    out.append(result.to_json())
print(json.dumps(out))
"""


def _run(workload: str, mode: str, points: list[list[str]]) -> list[dict]:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, workload, mode, json.dumps(points)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def _same(workload: str, points: list[list[str]]) -> None:
    fast = _run(workload, "fast", points)
    # the reference: SimPy models, and every point in a process of its own
    slow = [_run(workload, "reference", [p])[0] for p in points]
    assert len(fast) == len(slow) == len(points)
    for p, a, b in zip(points, fast, slow):
        assert a["metrics"].keys() == b["metrics"].keys(), p
        _close(a["metrics"], b["metrics"], f"{p} metrics")
        _close(a["records"], b["records"], f"{p} records")
        _close(a, b, str(p))


def _close(a, b, where: str) -> None:
    """Equal, floats within 1e-9 relative (1e-15 absolute near zero)."""
    assert type(a) is type(b) or {type(a), type(b)} <= {int, float}, (where, a, b)
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-15), (where, a, b)
    else:
        assert a == b, (where, a, b)


def test_close_tells_a_difference():
    _close({"a": [1.0, "x"]}, {"a": [1.0 + 1e-12, "x"]}, "ok")
    with pytest.raises(AssertionError):
        _close({"a": [1.0]}, {"a": [1.0 + 1e-6]}, "differs")
    with pytest.raises(AssertionError):
        _close({"a": "x"}, {"a": "y"}, "differs")


def test_small_fusion_study_is_identical_to_the_reference():
    _same("tests/data/fusion_small.yaml", [[]])


def test_small_coe_sweep_sharing_a_cache_is_identical_to_the_reference():
    ddr = "arch.sn40l.socket.ddr.bandwidth_bytes_per_s"
    _same("tests/data/coe_small.yaml", [[f"{ddr}={bw}", "sweep_experts=[]", "batch_sizes=[4]", "batches=6"]
                                          for bw in ("50e9", "200e9")])


@pytest.mark.slow
@pytest.mark.parametrize("workload", ["workloads/coe150.yaml", "workloads/fusion_suite.yaml",
                                      "workloads/fusion_suite_vs_h100.yaml", "workloads/llama2_7b_chat.yaml"])
def test_shipped_study_is_identical_to_the_reference(workload):
    _same(workload, [[]])


@pytest.mark.slow
def test_coe150_sweep_sharing_a_cache_is_identical_to_the_reference():
    ddr = "arch.sn40l.socket.ddr.bandwidth_bytes_per_s"
    _same("workloads/coe150.yaml", [[f"{ddr}={bw}", f"experts.count={n}", "sweep_experts=[]"]
                                    for bw, n in (("50e9", 25), ("50e9", 150), ("300e9", 150))])
