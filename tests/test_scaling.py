"""The scaling study (a model workload's scaling:, rdusim.studies.scaling_run): Llama-3-70B
on v5e slices per weight format."""

import json

import pytest
from hypothesis import given, strategies as st

from rdusim.cli import main
from rdusim.config.formats import Formats, WeightFormat, for_machine
from rdusim.config.workload import load_workload
from rdusim.config.model import load_model
from rdusim.graph.tensor import DType
from rdusim.memory import device_memory
from rdusim.studies.scaling_run import largest

WL = "workloads/tpu_v5e_llama3_70b.yaml"
SMALL = ["output_tokens=8", "batch_size=4", "scaling.machines={2x2: {slice.topology: 2x2}, 4x4: {slice.topology: 4x4}}",
         "scaling.weight_formats=[bf16, int4]", "scaling.contexts=[2048]", "scaling.batches=[1, 8]",
         "platforms={v5e: {arch: arch/tpu_v5e.yaml, tp: 16}}"]


@given(t=st.integers(0, 5000), limit=st.integers(1, 4096))
def test_largest_finds_the_boundary(t, limit):
    assert largest(lambda b: b <= t, limit) == min(t, limit)


def _run(tmp_path, *extra):
    args = ["run", WL, "--out", str(tmp_path / "s")]
    for s in [*SMALL, *extra]:
        args += ["--set", s]
    rc = main(args)
    return rc, (json.loads((tmp_path / "s" / "results.json").read_text())["metrics"] if rc == 0 else None)


def test_scaling_by_the_memory_rule(tmp_path):
    rc, m = _run(tmp_path)
    assert rc == 0
    k = "model.v5e.scaling."
    assert m[k + "bf16.2x2.fits"] == 0 and m[k + "bf16.4x4.fits"] == 1 and m[k + "bf16.min_devices"] == 16
    assert m[k + "int4.2x2.fits"] == 1 and m[k + "int4.min_devices"] == 4
    # the largest batch: it fits by rdusim.memory's rule and one more does not
    cfg = load_model("llama3-70b").with_formats(Formats(weight=WeightFormat(DType.INT4, 128), native_compute=True))
    b = int(m[k + "int4.2x2.max_batch.c2048"])
    assert b > 0
    loaded = load_workload(WL, [("platforms", {"v5e": {"arch": "arch/tpu_v5e.yaml", "tp": 4}}),
                                ("arch.v5e.slice.topology", "2x2")])
    dep = loaded.deployment("v5e", for_machine(cfg, loaded.archs["v5e"]))
    assert device_memory(dep, b, 2048, 1024).fits and not device_memory(dep, b + 1, 2048, 1024).fits
    for w, s in (("bf16", "4x4"), ("int4", "2x2"), ("int4", "4x4")):
        d = m[f"{k}{w}.{s}.devices"]
        assert m[f"{k}{w}.{s}.tokens_per_s_per_device"] == pytest.approx(4 / m[f"{k}{w}.{s}.tpot_s"] / d)
        assert m[f"{k}{w}.{s}.curve.b1.tpot_s"] < m[f"{k}{w}.{s}.curve.b8.tpot_s"]
        assert m[f"{k}{w}.{s}.realistic_over_ideal"] >= 1
    # int4 weights: less to read per step than bf16 on the same slice
    assert m[k + "int4.4x4.tpot_s"] < m[k + "bf16.4x4.tpot_s"]


@pytest.mark.parametrize("bad,key", [("scaling.platform=nope", "scaling.platform"),
                                     ("scaling.machines={8x16: {slice.topology: 8x16}}", "scaling.machines.8x16"),
                                     ("scaling.weight_formats=[fp8_e4m3]", "scaling.weight_formats")])
def test_bad_scaling_input_exits_2(tmp_path, capsys, bad, key):
    rc, _ = _run(tmp_path, bad)
    assert rc == 2 and key in capsys.readouterr().err
