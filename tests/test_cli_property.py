"""Issue 11 acceptance: random bad values (wrong type, negative, NaN/inf, 1e30, empty) fed
through --set into every numeric field of the workload and of its arch specs, for each
workload kind, exit 2 with one line naming the key and no traceback."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import typing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from rdusim.cli import main
from rdusim.config.arch import SCHEMAS
from rdusim.config.workload import REPO_ROOT, WorkloadKind, load_workload, spec_class

WORKLOADS = {WorkloadKind.COE: "tests/data/coe_small.yaml", WorkloadKind.FUSION: "tests/data/fusion_small.yaml",
             WorkloadKind.MODEL: "tests/data/sweep_model.yaml"}
if hasattr(WorkloadKind, "SERVE"):
    WORKLOADS[WorkloadKind.SERVE] = "workloads/serve_llama2_7b.yaml"   # bad values never get to simulate
if hasattr(WorkloadKind, "FINETUNE"):
    WORKLOADS[WorkloadKind.FINETUNE] = "workloads/finetune_mixtral_qlora.yaml"
BAD = ["abc", "true", "-1", "-0.5", "-1e30", "nan", ".nan", "inf", "-.inf", "1e30", "", "[1]", "{a: 1}"]


def _numeric_fields(cls: type, prefix: str, data: typing.Any) -> list[tuple[str, bool]]:
    """(dotted key, is a list of numbers) for every int/float field reachable in ``data``."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init or f.metadata.get("internal") or f.name == "sources":
            continue
        tp = hints[f.name]
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if typing.get_origin(tp) is typing.Union and len(args) == 1:
            tp = args[0]
            if dataclasses.is_dataclass(tp) and (data or {}).get(f.name) is None:
                continue          # an optional section this workload does not have (it needs keys of its own)
        key = f"{prefix}{f.name}"
        origin = typing.get_origin(tp)
        if tp in (int, float):
            out.append((key, False))
        elif origin is tuple and typing.get_args(tp)[0] in (int, float):
            out.append((key, True))
        elif origin is tuple and dataclasses.is_dataclass(typing.get_args(tp)[0]):
            for i, item in enumerate((data or {}).get(f.name) or []):
                out += _numeric_fields(typing.get_args(tp)[0], f"{key}.{i}.", item)
        elif origin in (typing.Mapping, dict) or str(origin).endswith("Mapping'>"):
            vtype = typing.get_args(tp)[1]
            if dataclasses.is_dataclass(vtype):
                for name, item in ((data or {}).get(f.name) or {}).items():
                    out += _numeric_fields(vtype, f"{key}.{name}.", item)
        elif dataclasses.is_dataclass(tp):
            out += _numeric_fields(tp, f"{key}.", (data or {}).get(f.name))
    return out


def fields_of(kind: WorkloadKind) -> list[tuple[str, bool]]:
    import yaml

    file = WORKLOADS[kind]
    raw = yaml.safe_load((REPO_ROOT / file).read_text())
    out = _numeric_fields(spec_class(kind), "", raw)
    loaded = load_workload(REPO_ROOT / file)
    for plat, arch in loaded.archs.items():
        arch_raw = yaml.safe_load(Path(loaded.arch_files[plat]).read_text())
        out += _numeric_fields(SCHEMAS[arch.kind], f"arch.{plat}.", arch_raw)
    return out


FIELDS = {kind: fields_of(kind) for kind in WORKLOADS}


def test_every_workload_kind_is_covered():
    assert set(WORKLOADS) == set(WorkloadKind)


def _value(bad: str, is_list: bool) -> str:
    return f"[1, {bad}]" if is_list and bad else bad


def check_rejected(kind: WorkloadKind, key: str, is_list: bool, bad: str, tmp: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["run", WORKLOADS[kind], "--set", f"{key}={_value(bad, is_list)}", "--out", str(tmp)])
    text = err.getvalue()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert code == 2, f"--set {key}={bad!r}: exit {code}, stderr {text!r}"
    assert len(lines) == 1 and "Traceback" not in text, text
    # the key is named: as given (workload), or its path inside the arch file (arch.<plat>. dropped);
    # list items and benchmark entries are written key[i] in messages
    named = key.split(".", 2)[2] if key.startswith("arch.") else key
    parts = named.split(".")
    assert all(p in lines[0] for p in parts if not p.isdigit()), (key, lines[0])
    assert not (tmp / "results.json").exists()


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)


@pytest.mark.parametrize("kind", list(WORKLOADS), ids=lambda k: k.value)
def test_every_numeric_field_rejects_a_bad_value(kind, tmp_path):
    """Every field once, with the bad values taken in turn."""
    fields = FIELDS[kind]
    assert len(fields) > 20 and any(k.startswith("arch.") for k, _ in fields)
    for i, (key, is_list) in enumerate(fields):
        check_rejected(kind, key, is_list, BAD[i % len(BAD)], tmp_path)


@pytest.mark.parametrize("kind", list(WORKLOADS), ids=lambda k: k.value)
@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_bad_values_are_exit_2_naming_the_key(kind, data, tmp_path):
    key, is_list = data.draw(st.sampled_from(FIELDS[kind]), label="field")
    bad = data.draw(st.one_of(st.sampled_from(BAD),
                              st.floats(max_value=-1e-9).map(repr),              # any negative number
                              st.floats(min_value=1e22, allow_infinity=True).map(repr),
                              st.text(alphabet="xyz_", min_size=1, max_size=5)), label="value")
    check_rejected(kind, key, is_list, bad, tmp_path)
