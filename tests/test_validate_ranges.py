"""Range references (in or out of range, never a percentage error), fitted_to on spec
numbers (strict parsing, --set), and fit groups with their degrees of freedom."""

import textwrap

import pytest

import rdusim.studies
from rdusim.config.arch import load_arch
from rdusim.config.fitted import FittedParameter, fitted_in_file
from rdusim.config.strict import Ctx, build
from rdusim.config.workload import REPO_ROOT
from rdusim.errors import InputError
from rdusim.results import RunResult, plain
from rdusim.validate import Reference, Role, compare, format_table, main_validate
from rdusim.validate_fits import compact_ids, fit_groups

WORKLOAD = """\
name: tiny
kind: model
model: llama2-7b
batch_size: 1
platforms:
  sn40l: {arch: ROOT/arch/sn40l.yaml}
"""


@pytest.fixture
def wl(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(WORKLOAD.replace("ROOT", str(REPO_ROOT)))
    return p


@pytest.fixture
def fake_study(monkeypatch):
    def run(loaded, *, trace=False, wants=None):
        return RunResult(workload_name=loaded.name, kind="model", resolved=plain(loaded.raw), archs={},
                         seed=loaded.seed, metrics={"model.sn40l.latency_s": 2.0})
    monkeypatch.setattr(rdusim.studies, "run_study", run)


RANGES = """\
references:
  - id: in
    source: "a paper: 1.5x to 3x"
    workload: WL
    metric: model.sn40l.latency_s
    range: [1.5, 3.0]
    role: calibration
  - id: out
    source: "a paper: 2.5x to 4x"
    workload: WL
    metric: model.sn40l.latency_s
    range: [2.5, 4.0]
"""


def write(tmp_path, wl, body):
    p = tmp_path / "refs.yaml"
    p.write_text(textwrap.dedent(body).replace("WL", str(wl)))
    return str(p)


def _range_ref(low, high):
    return Reference(id="r", source="s", workload="w", metric="m", range=(low, high))


def test_a_range_is_in_or_out_with_no_percentage_error():
    row = compare(_range_ref(1.5, 3.0), {"m": 2.0})
    assert row.passed and row.status == "IN RANGE" and row.error is None and row.expected is None
    assert compare(_range_ref(1.5, 3.0), {"m": 1.5}).passed and compare(_range_ref(1.5, 3.0), {"m": 3.0}).passed
    row = compare(_range_ref(1.5, 3.0), {"m": 3.2})
    assert not row.passed and row.status == "OUT OF RANGE"
    assert row.note == "3.2 outside the published range 1.5-3"
    # a run that failed is a FAIL, not "out of range"
    assert compare(_range_ref(1.5, 3.0), None, "boom").status == "FAIL"


def test_a_range_with_an_interval_passes_when_they_overlap():
    assert compare(_range_ref(1.5, 3.0), {"m": 3.2, "m.ci95_low": 2.9, "m.ci95_high": 3.4}).passed
    row = compare(_range_ref(1.5, 3.0), {"m": 3.2, "m.ci95_low": 3.1, "m.ci95_high": 3.4})
    assert not row.passed and "95% CI 3.1-3.4" in row.note


def test_range_rows_print_the_range_and_no_error(tmp_path, wl, fake_study, capsys):
    assert main_validate([write(tmp_path, wl, RANGES)]) == 1
    out = capsys.readouterr().out
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith(("in ", "out "))}
    assert lines["in"].split()[1:] == ["1.5-3", "2", "-", "-", "range", "IN", "RANGE", "none", "0", "-", "-"]
    assert "OUT OF RANGE" in lines["out"] and "%" not in lines["out"].split("a paper")[0]
    assert "calibration: 1 reference, 1/1 pass; 1 range 1/1 in range" in out
    assert "validation: 1 reference, 0/1 pass; 1 range 0/1 in range" in out
    assert "FAIL out: 2 outside the published range 2.5-4" in out


@pytest.mark.parametrize("edit, key", [
    (("range: [1.5, 3.0]", "range: [3.0, 1.5]"), "references[0].range"),
    (("range: [1.5, 3.0]", "range: [1.5, 2.0, 3.0]"), "references[0].range"),
    (("range: [1.5, 3.0]", "range: [1.5, lots]"), "references[0].range[1]"),
    (("range: [1.5, 3.0]", "range: [1.5, 3.0]\n    expected: 2.0"), "references[0].expected"),
    (("range: [1.5, 3.0]", "range: [1.5, 3.0]\n    tolerance: 0.1"), "references[0].tolerance"),
    (("range: [1.5, 3.0]", "expected: 2.0"), "references[0].tolerance"),
    (("range: [1.5, 3.0]", "tolerance: 0.1"), "references[0].expected"),
])
def test_bad_ranges_exit_2_naming_the_key(tmp_path, wl, fake_study, capsys, edit, key):
    path = write(tmp_path, wl, RANGES.replace(*edit, 1))
    assert main_validate([path]) == 2
    err = capsys.readouterr().err
    assert path in err and key in err and "Traceback" not in err


def test_the_report_table_shows_a_range():
    from rdusim.report.tables import validation_table
    table = validation_table([compare(_range_ref(1.5, 3.0), {"m": 2.0}).as_dict()])
    (row,) = table.rows
    assert row[4] == "1.5-3" and row[6] is None and row[8] == "IN RANGE"


# ---- fitted_to on {value, source} numbers

SPEC = """\
name: s
kind: rdu
description: d
launch: ho
host:
  per_step_s: {value: 1.0e-3, source: "fitted to a and b", fitted_to: [a, b]}
  per_request_s: {value: 2.0e-3, source: "assumed"}
"""


def _stack(tmp_path, text):
    import yaml

    from rdusim.config.stack import StackSpec
    p = tmp_path / "stacks" / "s.yaml"
    p.parent.mkdir(exist_ok=True)
    p.write_text(text)
    ctx = Ctx(file=str(p), sourced=True)
    build(StackSpec, yaml.safe_load(text), ctx)
    return p, ctx


def test_fitted_to_is_collected_by_dotted_key(tmp_path):
    p, ctx = _stack(tmp_path, SPEC)
    assert ctx.fitted == {"host.per_step_s": ("a", "b")}
    (param,) = fitted_in_file(p, "stacks", tmp_path)
    assert (param.file, param.key, param.value, param.fitted_to) == ("stacks/s.yaml", "host.per_step_s", 1.0e-3,
                                                                     ("a", "b"))


@pytest.mark.parametrize("bad, key", [
    ("fitted_to: []", "host.per_step_s.fitted_to"),
    ("fitted_to: a", "host.per_step_s.fitted_to"),
    ("fitted_to: [a, 3]", "host.per_step_s.fitted_to[1]"),
    ("fitted_to: [a, a]", "host.per_step_s.fitted_to[1]"),
    ("fitted_to: [a, '']", "host.per_step_s.fitted_to[1]"),
    ("fitted: [a]", "host.per_step_s"),
])
def test_a_malformed_fitted_to_names_file_and_key(tmp_path, bad, key):
    with pytest.raises(InputError) as exc:
        _stack(tmp_path, SPEC.replace("fitted_to: [a, b]", bad))
    assert exc.value.key == key and "stacks/s.yaml" in exc.value.file


def test_set_on_a_fitted_number_replaces_it_and_drops_the_fit():
    arch = load_arch(REPO_ROOT / "arch" / "sn40l.yaml", [("launch.software_s", 3e-5)])
    assert arch.launch.software_s == 3e-5
    assert arch.sources["launch.software_s"].startswith("override --set")


def _param(file, key, refs, value=1.0):
    return FittedParameter(file, key, value, "fitted", tuple(refs))


def test_fit_groups_join_parameters_sharing_references_and_merge_copies():
    params = [_param("arch/a.yaml", "x", ["p1", "p2"]), _param("stacks/s.yaml", "y", ["p2", "p3"]),
              _param("arch/a_variant.yaml", "x", ["p1", "p2"]),          # a copy: same key, value, refs
              _param("arch/b.yaml", "z", ["q1"]), _param("arch/b.yaml", "w", ["q1"])]
    groups = fit_groups(params, order=["q1", "p1", "p2", "p3"])
    assert [g.label for g in groups] == ["F1", "F2"]
    q, p = groups
    assert (len(q.parameters), q.points, q.dof) == (2, 1, -1)
    assert (len(p.parameters), p.points, p.dof) == (2, 3, 1) and p.references == ("p1", "p2", "p3")
    assert p.parameter_labels()[0] == "arch/a.yaml x (same fit in arch/a_variant.yaml)"
    # a copy with another value is another parameter
    other = fit_groups(params + [_param("arch/a_variant2.yaml", "x", ["p1", "p2"], value=2.0)])
    assert sum(len(g.parameters) for g in other) == 5


def test_calibration_rows_show_their_group_and_dof():
    ref = Reference(id="p1", source="s", workload="w", metric="m", expected=1.0, tolerance=0.1,
                    role=Role.CALIBRATION)
    groups = fit_groups([_param("arch/a.yaml", "x", ["p1"])], order=["p1"])
    import dataclasses
    row = dataclasses.replace(compare(ref, {"m": 1.0}), fit_group="F1", fit_parameters=1, fit_points=1)
    assert row.dof == 0
    text = format_table([row], groups)
    assert "F1  1 parameter on 1 point, dof 0 (reproduced by construction)" in text
    assert "fits: 1 fitted parameter in 1 group on 1 calibration point, 0 degrees of freedom left" in text


def test_compact_ids_writes_a_shared_prefix_once():
    assert compact_ids(["n.a.tp1", "n.a.tp2", "x.y"]) == ["n.a.{tp1, tp2}, x.y"]
    assert compact_ids(["a.b", "c.d"]) == ["a.b, c.d"]
