"""Golden results of the two shipped serving studies (serve_llama2_7b, serve_coe150), like
tests/test_golden.py's: their headline metrics -- the README's serving figures come from
them -- compared at 1% relative tolerance. Drift detectors, not references. When a change is
meant to move them, re-run with RDUSIM_UPDATE_GOLDEN=1 and say why in the commit."""

import functools
import json
import os
from fnmatch import fnmatch
from pathlib import Path

import pytest

from rdusim.config.workload import load_workload
from rdusim.studies import run_study

GOLDEN = Path(__file__).parent / "data" / "golden"
TOLERANCE = 0.01   # relative
HEADLINE = ["serve.*.*.capacity.max_rate_per_s", "serve.*.*.requests_per_s", "serve.*.*.ttft.p50_s",
            "serve.*.*.ttft.p99_s", "serve.*.*.tpot.p50_s", "serve.*.*.tpot.p99_s", "serve.*.*.hit_rate",
            "serve.*.*.load*.requests_per_s", "serve.*.*.load*.ttft.p99_s", "serve.*.*.load*.kv_occupancy.max",
            "serve.*.*.energy_j_per_token", "serve.*.*.power_w_per_device"]
CASES = {"serve_llama2_7b": "workloads/serve_llama2_7b.yaml", "serve_coe150": "workloads/serve_coe150.yaml"}


@functools.cache
def _metrics(name):
    return run_study(load_workload(CASES[name])).metrics


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_serving(name):
    metrics = _metrics(name)
    got = {k: v for k, v in sorted(metrics.items()) if any(fnmatch(k, g) for g in HEADLINE)}
    assert len(got) >= 20
    path = GOLDEN / f"{name}.json"
    if os.environ.get("RDUSIM_UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(path.read_text())
    assert sorted(got) == sorted(want), sorted(set(got) ^ set(want))[:10]
    off = {k: (got[k], want[k]) for k in want
           if (got[k] is None) != (want[k] is None)
           or (want[k] is not None and abs(got[k] - want[k]) > TOLERANCE * max(abs(want[k]), 1e-12))}
    assert not off, dict(list(off.items())[:10])
