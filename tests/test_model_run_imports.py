"""A model run needs neither numpy nor SimPy (the reference models), a CoE run without
prefetch no SimPy; the plain-Python sums of the decode steps equal the vectorised
interpolation."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from rdusim.cache import RunCache
from rdusim.config.arch import load_arch
from rdusim.config.deployment import Deployment
from rdusim.config.model import load_model
from rdusim.config.policy import FusionPolicy, LaunchMode
from rdusim.engine.stepper import StepModel


def _loaded_after_run(workload: str, out, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a run of ``workload`` in one process (--jobs 1) has imported."""
    code = ("import sys; from rdusim.cli import main\n"
            f"rc = main(['run', {workload!r}, '--out', {str(out)!r}, '--jobs', '1'])\n"
            "assert rc == 0, rc\n"
            f"print(sorted(m for m in {modules!r} if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return eval(proc.stdout.strip().splitlines()[-1])


def test_a_model_run_imports_no_numpy(tmp_path):
    assert _loaded_after_run("workloads/llama2_7b_chat.yaml", tmp_path / "o",
                             ("numpy", "simpy", "networkx", "matplotlib")) == []


def test_a_coe_run_without_prefetch_imports_no_simpy(tmp_path):
    # the lone expert switch is the flow network's answer without events (rdusim.engine.fluid)
    assert _loaded_after_run("tests/data/coe_small.yaml", tmp_path / "o", ("simpy", "networkx", "matplotlib")) == []


@pytest.mark.parametrize("arch,launch,first,steps", [("arch/sn40l.yaml", LaunchMode.HARDWARE, 128, 300),
                                                     ("arch/dgx_h100.yaml", LaunchMode.CUDA_GRAPH, 1, 70),
                                                     ("arch/dgx_h100.yaml", LaunchMode.CUDA_GRAPH, 512, 1)])
def test_decode_sums_equal_the_vectorised_rule(arch, launch, first, steps):
    dep = Deployment.of(load_arch(arch), load_model("llama2-7b"), tp=8, fusion=FusionPolicy.FUSED, launch=launch)
    model = StepModel(dep, RunCache())
    total, parts, anchors = model.decode_sums(4, first, steps)
    times, split, anchors2 = model.decode(4, np.arange(first, first + steps))
    assert total == pytest.approx(float(times.sum()), rel=1e-12)
    for k, v in parts.items():
        assert v == pytest.approx(float(split[k].sum()), rel=1e-12, abs=1e-18)
    assert [a.time_s for a in anchors] == [a.time_s for a in anchors2]
