"""rdusim validate: strict reference files, one run per (workload, set), pass/fail, exit codes."""

import textwrap

import pytest

import rdusim.studies
from rdusim import cli
from rdusim.config.workload import REPO_ROOT
from rdusim.errors import InputError
from rdusim.results import RunResult, plain
from rdusim.validate import (Reference, Role, applicable_rows, compare, format_table, load_references, role_summary,
                             main_validate, validation_rows)

WORKLOAD = """\
name: tiny
kind: model
model: llama2-7b
batch_size: 1
platforms:
  sn40l: {arch: ROOT/arch/sn40l.yaml}
  dgx_h100: {arch: ROOT/arch/dgx_h100.yaml}
"""


@pytest.fixture
def wl(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(WORKLOAD.replace("ROOT", str(REPO_ROOT)))
    return p


@pytest.fixture
def fake_study(monkeypatch):
    """A study whose latency is 0.1 s per batch element; counts its runs."""
    calls = []

    def run(loaded, *, trace=False, wants=None):
        calls.append(dict(loaded.raw))
        bs = loaded.spec.batch_size
        return RunResult(workload_name=loaded.name, kind="model", resolved=plain(loaded.raw),
                         archs={}, seed=loaded.seed,
                         metrics={"model.sn40l.latency_s": 0.1 * bs, "model.dgx_h100.latency_s": 0.3 * bs})

    monkeypatch.setattr(rdusim.studies, "run_study", run)
    return calls


def refs_file(tmp_path, wl, body, name="refs.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(body).replace("WL", str(wl)))
    return str(p)


GOOD = """\
references:
  - id: ref.bs1
    source: "Someone et al., Table 9"
    workload: WL
    metric: model.sn40l.latency_s
    expected: 0.105
    tolerance: 0.1
    role: calibration
  - id: ref.bs4
    source: "Someone et al., Table 9"
    workload: WL
    set: {batch_size: 4}
    metric: model.sn40l.latency_s
    expected: 0.4
    tolerance: 0.05
  - id: ref.h100.bs4
    source: "Other, Figure 2"
    workload: WL
    set: {batch_size: 4}
    metric: model.dgx_h100.latency_s
    expected: 1.2
    tolerance: 0.01
"""


def test_all_pass_exit_0_and_each_run_once(tmp_path, wl, fake_study, capsys):
    assert main_validate([refs_file(tmp_path, wl, GOOD)]) == 0
    out = capsys.readouterr().out
    for word in ("ref.bs1", "ref.bs4", "ref.h100.bs4", "calibration", "validation", "PASS", "Someone et al."):
        assert word in out
    assert "FAIL" not in out
    # the two roles apart, each with its own count (never one combined score)
    assert "calibration: 1 reference, 1/1 pass; 1 point 1/1 within tolerance" in out
    assert "validation: 2 references, 2/2 pass; 2 points 2/2 within tolerance" in out
    assert "3/3" not in out
    assert out.index("Calibration:") < out.index("ref.bs1") < out.index("Validation:") < out.index("ref.bs4")
    assert len(fake_study) == 2   # two distinct (workload, set) pairs


def test_rows_carry_error_and_role(tmp_path, wl, fake_study):
    rows = {r.id: r for r in validation_rows([refs_file(tmp_path, wl, GOOD)])}
    assert rows["ref.bs1"].role == Role.CALIBRATION.value
    assert rows["ref.bs1"].simulated == pytest.approx(0.1)
    assert rows["ref.bs1"].error == pytest.approx(0.1 / 0.105 - 1)
    assert rows["ref.bs4"].role == "validation" and rows["ref.bs4"].passed


def test_wrong_expected_value_exits_1_naming_the_reference(tmp_path, wl, fake_study, capsys):
    bad = GOOD.replace("expected: 1.2", "expected: 2.4")
    assert main_validate([refs_file(tmp_path, wl, bad)]) == 1
    out = capsys.readouterr().out
    assert "FAIL ref.h100.bs4" in out and "-50.0%" in out


def test_missing_metric_fails_naming_the_metric(tmp_path, wl, fake_study, capsys):
    bad = GOOD.replace("metric: model.dgx_h100.latency_s", "metric: model.dgx_h100.ttft_s")
    assert main_validate([refs_file(tmp_path, wl, bad)]) == 1
    assert "metric model.dgx_h100.ttft_s missing" in capsys.readouterr().out


def test_crashing_study_fails_its_references_only(tmp_path, wl, monkeypatch, capsys):
    def run(loaded, *, trace=False, wants=None):
        if loaded.spec.batch_size == 4:
            raise ZeroDivisionError("boom")
        return RunResult("tiny", "model", {}, {}, 0, {"model.sn40l.latency_s": 0.1})

    monkeypatch.setattr(rdusim.studies, "run_study", run)
    rows = {r.id: r for r in validation_rows([refs_file(tmp_path, wl, GOOD)])}
    assert rows["ref.bs1"].passed
    assert not rows["ref.bs4"].passed and "ZeroDivisionError: boom" in rows["ref.bs4"].note


def test_non_finite_metric_fails():
    from rdusim.validate import Reference
    ref = Reference(id="r", source="s", workload="w", metric="m", expected=1.0, tolerance=0.1)
    assert not compare(ref, {"m": float("nan")}).passed
    assert not compare(ref, {"m": None}).passed
    assert not compare(ref, None, "it crashed").passed


@pytest.mark.parametrize("edit, key", [
    (("tolerance: 0.05", "tolerance: -0.05"), "references[1].tolerance"),
    (("tolerance: 0.05", "tolerance: lots"), "references[1].tolerance"),
    (("expected: 0.4", "expected: 0"), "references[1].expected"),
    (("role: calibration", "role: fitted"), "references[0].role"),
    (("    set: {batch_size: 4}\n", "    sett: {batch_size: 4}\n"), "references[1].sett"),
    (("  - id: ref.h100.bs4\n", "  - id: ref.bs1\n"), "references[2].id"),
    (("    metric: model.sn40l.latency_s\n    expected: 0.105\n", "    expected: 0.105\n"), "references[0].metric"),
])
def test_bad_reference_files_exit_2_with_file_and_key(tmp_path, wl, fake_study, capsys, edit, key):
    body = GOOD.replace(*edit, 1)
    path = refs_file(tmp_path, wl, body)
    assert main_validate([path]) == 2
    err = capsys.readouterr().err
    assert path in err and key in err
    assert fake_study == []   # nothing runs before the whole file is checked


def test_missing_workload_file_is_bad_input(tmp_path, wl, fake_study, capsys):
    path = refs_file(tmp_path, "workloads/nope.yaml", GOOD)
    assert main_validate([path]) == 2
    assert "references[0].workload" in capsys.readouterr().err


def test_bad_set_key_names_the_reference(tmp_path, wl, fake_study, capsys):
    path = refs_file(tmp_path, wl, GOOD.replace("set: {batch_size: 4}", "set: {batch_sise: 4}", 1))
    assert main_validate([path]) == 2
    err = capsys.readouterr().err
    assert "batch_sise" in err and "ref.bs4" in err


def test_no_references_is_bad_input(tmp_path, fake_study, monkeypatch, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("references: []\n")
    assert main_validate([str(empty)]) == 2
    monkeypatch.setattr("rdusim.config.workload.REPO_ROOT", tmp_path)   # no references/ dir there
    assert main_validate([]) == 2
    assert "at least one reference" in capsys.readouterr().err
    with pytest.raises(InputError):
        load_references([str(tmp_path / "missing.yaml")])


def test_default_is_every_yaml_in_references(tmp_path, wl, fake_study, monkeypatch, capsys):
    (tmp_path / "references").mkdir()
    refs_file(tmp_path / "references", wl, GOOD, name="a.yaml")
    (tmp_path / "references" / "notes.txt").write_text("not a reference")
    monkeypatch.setattr("rdusim.config.workload.REPO_ROOT", tmp_path)
    assert cli.main(["validate"]) == 0
    assert "validation: 2 references, 2/2 pass" in capsys.readouterr().out


def test_cli_refs_flag_and_no_progress_noise_in_pipes(tmp_path, wl, fake_study, capsys):
    path = refs_file(tmp_path, wl, GOOD)
    assert cli.main(["validate", "--refs", path]) == 0
    cap = capsys.readouterr()
    assert cap.err == ""                       # the progress bar is drawn on terminals only
    assert "calibration: 1 reference, 1/1 pass" in cap.out


def test_progress_bar_on_a_terminal(tmp_path, wl, fake_study, monkeypatch):
    import io

    from rdusim.progress import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    ticks = iter(range(0, 1000, 5))          # a clock that makes every step look slow
    monkeypatch.setattr("rdusim.validate.Progress",
                        lambda total, label, stream: Progress(total, label, stream, clock=lambda: float(next(ticks))))
    err = Tty()
    rows = validation_rows([refs_file(tmp_path, wl, GOOD)], stream=err)
    assert len(rows) == 3 and "validate [" in err.getvalue() and "2/2" in err.getvalue()


def test_applicable_rows_reads_a_finished_run_without_simulating(tmp_path, wl, fake_study):
    path = refs_file(tmp_path, wl, GOOD)
    from rdusim.config.workload import load_workload
    loaded = load_workload(wl, [("batch_size", 4)])
    result = rdusim.studies.run_study(loaded)
    rdusim.studies.run_study = None   # any simulation now would crash
    rows = applicable_rows(result, [path])
    assert sorted(r.id for r in rows) == ["ref.bs4", "ref.h100.bs4"]
    from rdusim.validate import applicable_references
    assert applicable_references(result, [path])[1] == ["ref.bs1"]   # same workload, other settings
    other = RunResult("tiny", "model", {"name": "other"}, {}, 0, {})
    assert applicable_rows(other, [path]) == []


def test_format_table_truncates_long_sources():
    from rdusim.validate import Reference
    ref = Reference(id="r", source="x" * 100, workload="w", metric="m", expected=2.0, tolerance=0.1)
    text = format_table([compare(ref, {"m": 2.1})])
    assert "x" * 41 + "..." in text and "+5.0" in text and "±10%" in text and "PASS" in text


def _ci_ref(expected, tolerance=0.1):
    return Reference(id="ci", source="s", workload="w.yaml", metric="m", expected=expected, tolerance=tolerance)


def test_an_interval_passes_when_it_overlaps_the_tolerance_band():
    metrics = {"m": 3.2, "m.ci95_low": 3.1, "m.ci95_high": 3.3}
    # band 2.7-3.3 for 3.0 +- 10%: the interval touches it exactly at 3.3
    assert compare(_ci_ref(3.0), metrics).passed
    row = compare(_ci_ref(2.9), metrics)          # band 2.61-3.19 still overlaps 3.1-3.3
    assert row.passed and row.ci95_low == 3.1 and row.ci95_high == 3.3
    row = compare(_ci_ref(2.8), metrics)          # band 2.52-3.08: no overlap
    assert not row.passed and "95% CI 3.1-3.3" in row.note
    # without an interval the point rule applies: 3.2 is 14% above 2.8
    assert not compare(_ci_ref(2.8), {"m": 3.2}).passed


def test_role_summary_median_and_max():
    rows = [compare(_ci_ref(e), {"m": 1.0}) for e in (1.0, 0.5, 1.25)]   # errors 0, +100%, -20%
    text = role_summary(rows)
    assert "3 references, 1/3 pass; 3 points 1/3 within tolerance" in text
    assert "median 20.0%" in text and "max 100.0%" in text
