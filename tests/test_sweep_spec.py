"""Sweep definitions: --grid parsing, product and zip points, sweep files, their errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdusim.cli import main
from rdusim.errors import InputError
from rdusim.sweep.grid import expand
from rdusim.sweep.spec import (Axis, GridMode, PlotKind, SweepSpec, check, load_sweep_file,
                               parse_grid_flag)

WORKLOAD = "tests/data/sweep_model.yaml"


def _spec(*axes, mode=GridMode.PRODUCT, **kw):
    return SweepSpec(name="t", workload=WORKLOAD, axes=tuple(Axis(k, tuple(v)) for k, v in axes), mode=mode, **kw)


def test_grid_flag_values_are_yaml_scalars():
    assert parse_grid_flag("a.b=1,2.5,abc,true").values == (1, 2.5, "abc", True)
    assert parse_grid_flag("k=1e9").values == (1e9,)
    assert isinstance(parse_grid_flag("k=1e9").values[0], float)
    assert parse_grid_flag("k=[1, 2, 3]").values == (1, 2, 3)
    assert parse_grid_flag(" batch_size = 1,8").key == "batch_size"


@pytest.mark.parametrize("flag", ["nokey", "k=", "k=1,,2", "=1,2", "a..b=1", "k=[1, 2", "k=[]", "k=2024-01-01"])
def test_bad_grid_flags_name_the_key(flag):
    with pytest.raises(InputError) as err:
        parse_grid_flag(flag)
    assert err.value.file in ("--grid", "--set")


def test_product_order_last_axis_fastest():
    pts = expand(_spec(("a", [1, 2]), ("b", ["x", "y", "z"])))
    assert [p.params for p in pts][:4] == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"},
                                           {"a": 2, "b": "x"}]
    assert [p.index for p in pts] == list(range(6))


def test_zip_pairs_values_and_rejects_length_mismatch():
    pts = expand(_spec(("a", [1, 2]), ("b", [3, 4]), mode=GridMode.ZIP))
    assert [p.params for p in pts] == [{"a": 1, "b": 3}, {"a": 2, "b": 4}]
    with pytest.raises(InputError) as err:
        check(_spec(("a", [1, 2]), ("b", [3, 4, 5]), mode=GridMode.ZIP))
    assert err.value.key == "b" and "--zip" in err.value.expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(-5, 5), min_size=1, max_size=4, unique=True), min_size=1, max_size=4))
def test_product_covers_every_combination_once(value_lists):
    spec = _spec(*((f"k{i}", v) for i, v in enumerate(value_lists)))
    pts = expand(spec)
    assert len(pts) == math.prod(len(v) for v in value_lists)
    assert len({p.values for p in pts}) == len(pts)
    assert [p.index for p in pts] == list(range(len(pts)))
    assert expand(spec) == pts   # the same definition gives the same indices every time


def test_duplicate_and_swept_and_set_keys_rejected():
    with pytest.raises(InputError, match="each swept key once"):
        check(_spec(("a", [1]), ("a", [2])))
    with pytest.raises(InputError, match="either swept or set"):
        check(_spec(("a", [1]), fixed=(("a", 2),)))


def _write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "sweep.yaml"
    f.write_text(text)
    return f


def test_sweep_file_loads(tmp_path):
    f = _write(tmp_path, f"""
sweep:
  workload: {WORKLOAD}
  grid:
    batch_size: [1, 2]
    arch.sn40l.socket.pmu.capacity_bytes: [262144, 524288]
  metrics: ["model.*.tpot_s"]
  set: {{output_tokens: 3}}
  plots:
    - {{metric: model.sn40l.tpot_s, x: batch_size, by: arch.sn40l.socket.pmu.capacity_bytes, kind: heatmap}}
""")
    spec = load_sweep_file(f, seed=5)
    assert spec.name == "sweep" and spec.seed == 5 and spec.mode == GridMode.PRODUCT
    assert spec.keys == ("batch_size", "arch.sn40l.socket.pmu.capacity_bytes")
    assert spec.fixed == (("output_tokens", 3),) and spec.metrics == ("model.*.tpot_s",)
    assert spec.plots[0].kind == PlotKind.HEATMAP
    assert Path(spec.workload).is_file()


@pytest.mark.parametrize("body, key", [
    ("  grid: {batch_size: 1}", "sweep.grid.batch_size"),
    ("  grid: {batch_size: []}", "sweep.grid.batch_size"),
    ("  grid: {batch_size: [1]}\n  colour: red", "sweep.colour"),
    ("  grid: {batch_size: [1]}\n  zip: maybe", "sweep.zip"),
    ("  grid: {batch_size: [1]}\n  plots: [{metric: m, x: nope}]", "plots.x"),
    ("  grid: {batch_size: [1]}\n  plots: [{metric: m, x: batch_size, kind: heatmap}]", "plots.by"),
    ("  grid: {a: [1, 2], b: [1]}\n  zip: true", "b"),
])
def test_bad_sweep_files_name_the_key(tmp_path, body, key):
    f = _write(tmp_path, f"sweep:\n  workload: {WORKLOAD}\n{body}\n")
    with pytest.raises(InputError) as err:
        load_sweep_file(f)
    assert err.value.key == key


def test_sweep_file_with_grid_flag_exits_2(tmp_path, capsys):
    f = _write(tmp_path, f"sweep:\n  workload: {WORKLOAD}\n  grid: {{batch_size: [1]}}\n")
    assert main(["sweep", str(f), "--grid", "batch_size=2", "--out", str(tmp_path / "o")]) == 2
    assert "--grid" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_zip_mismatch_and_no_grid_exit_2(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["sweep", WORKLOAD, "--grid", "batch_size=1,2", "--grid", "output_tokens=1,2,3",
                 "--zip", "--out", str(out)]) == 2
    assert "output_tokens" in capsys.readouterr().err
    assert main(["sweep", WORKLOAD, "--out", str(out)]) == 2
    assert not out.exists()


def test_metric_globs_keep_and_drop():
    from rdusim.sweep.runner import choose_metrics
    m = {"f.a.speedup.x": 1, "f.a.sn40l.speedup.x": 1, "f.a.time_s": 2.0, "f.a.oom": True}
    assert choose_metrics(m, ()) == {"f.a.oom": 1, "f.a.sn40l.speedup.x": 1, "f.a.speedup.x": 1, "f.a.time_s": 2.0}
    assert choose_metrics(m, ("f.*.speedup.*",)) == {"f.a.sn40l.speedup.x": 1, "f.a.speedup.x": 1}
    assert choose_metrics(m, ("f.*.speedup.*", "!*.sn40l.*")) == {"f.a.speedup.x": 1}
    assert choose_metrics(m, ("!*.sn40l.*", "!*.oom")) == {"f.a.speedup.x": 1, "f.a.time_s": 2.0}
    assert choose_metrics({"x": float("inf")}, ()) == {"x": None}
