"""The fusion study takes the repeated-layer shortcuts for training steps (RDU plans and GPU
kernels from the model cut to three layers) and its results are what building and compiling
the whole graph gives: the same results.json data, records included."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rdusim.compiler import repeat_runs
from rdusim.config.workload import load_workload
from rdusim.studies import run_study

pytest.importorskip("rdusim.engine.gpu.repeat")
from rdusim.engine.gpu import repeat as gpu_repeat  # noqa: E402


@pytest.fixture
def workload(tmp_path) -> Path:
    wl = {"name": "train_small", "kind": "fusion", "execution": {"tiles": 16},
          "platforms": {"sn40l": {"arch": "arch/sn40l.yaml", "tp": 8},
                        "dgx_h100": {"arch": "arch/dgx_h100.yaml", "tp": 8}},
          "benchmarks": [{"name": "train", "model": "llama2-7b", "phase": "train", "batch": 1, "seq": 256,
                          "layers": 5},
                         {"name": "decode", "model": "llama2-7b", "phase": "decode", "batch": 1, "seq": 256,
                          "layers": 5}]}
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(wl))
    return path


def test_training_steps_take_the_shortcut_and_give_the_whole_graphs_results(workload, monkeypatch):
    used = {"rdu": 0, "gpu": 0}
    rdu, gpu = repeat_runs.compile_repeated_runs, gpu_repeat.repeated_step_kernels

    def counted(fn, key):
        def call(*args, **kw):
            got = fn(*args, **kw)
            used[key] += got is not None
            return got
        return call

    monkeypatch.setattr(repeat_runs, "compile_repeated_runs", counted(rdu, "rdu"))
    monkeypatch.setattr(gpu_repeat, "repeated_step_kernels", counted(gpu, "gpu"))
    fast = run_study(load_workload(workload)).to_json()
    assert used == {"rdu": 2, "gpu": 2}             # both policies on each platform

    monkeypatch.setattr(repeat_runs, "compile_repeated_runs", lambda *a, **k: None)
    monkeypatch.setattr(gpu_repeat, "repeated_step_kernels", lambda *a, **k: None)
    whole = run_study(load_workload(workload)).to_json()
    assert fast == whole
    assert any(r["benchmark"] == "train" for r in fast["records"])
