"""Test-suite settings. Property tests draw the same examples on every run (a derandomized
Hypothesis profile), so the suite is as deterministic as the simulator; set
HYPOTHESIS_PROFILE=explore to draw fresh examples (and let Hypothesis print any failure's seed)."""

import json
import os

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
