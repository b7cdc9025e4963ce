"""Strict YAML -> dataclass conversion: every mistake names file, key, expected, found."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest

from rdusim.config.arch import load_arch
from rdusim.config.model import Activation, ModelConfig, load_model
from rdusim.config.strict import Ctx, build, positive
from rdusim.config.yamlio import apply_overrides, load_yaml, parse_set
from rdusim.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Inner:
    bandwidth_bytes_per_s: float = field(metadata=positive())


@dataclass(frozen=True)
class Outer:
    name: str
    count: int = field(default=1, metadata={"ge": 1, "le": 8})
    act: Activation = Activation.SILU
    inner: Optional[Inner] = None
    flag: bool = False


def _err(data, sourced=False) -> InputError:
    with pytest.raises(InputError) as e:
        build(Outer, data, Ctx(file="f.yaml", sourced=sourced))
    assert e.value.file == "f.yaml"
    return e.value


def test_good_data_builds_frozen():
    o = build(Outer, {"name": "x", "count": 3.0, "act": "gelu", "inner": {"bandwidth_bytes_per_s": 2e11}},
              Ctx(file="f.yaml"))
    assert o.count == 3 and isinstance(o.count, int) and o.act == Activation.GELU
    with pytest.raises(AttributeError):
        o.name = "y"


@pytest.mark.parametrize("data,key,text", [
    ({"name": "x", "colour": 1}, "colour", "unknown key"),
    ({}, "name", "present"),
    ({"name": 5}, "name", "a string"),
    ({"name": "x", "count": 2.5}, "count", "an integer"),
    ({"name": "x", "count": 9}, "count", "<= 8"),
    ({"name": "x", "count": 0}, "count", ">= 1"),
    ({"name": "x", "count": True}, "count", "an integer"),
    ({"name": "x", "act": "tanh"}, "act", "one of"),
    ({"name": "x", "flag": "yes"}, "flag", "true or false"),
    ({"name": "x", "inner": {"bandwidth_bytes_per_s": "200 GB/s"}}, "inner.bandwidth_bytes_per_s",
     "bytes per second"),
    ({"name": "x", "inner": {"bandwidth_bytes_per_s": -1}}, "inner.bandwidth_bytes_per_s", "> 0"),
    ({"name": "x", "inner": {"bandwidth_bytes_per_s": float("nan")}}, "inner.bandwidth_bytes_per_s", "finite"),
    ({"name": "x", "inner": [1]}, "inner", "a mapping"),
    ([1, 2], "(top level)", "a mapping"),
])
def test_errors_name_the_key(data, key, text):
    e = _err(data)
    assert e.key == key and text in str(e)


def test_sourced_numbers_need_value_and_source():
    ok = {"name": "x", "count": {"value": 2, "source": "datasheet"}}
    assert build(Outer, ok, Ctx(file="f.yaml", sourced=True)).count == 2
    assert _err({"name": "x", "count": 2}, sourced=True).key == "count"
    e = _err({"name": "x", "count": {"value": 2, "source": " "}}, sourced=True)
    assert e.key == "count.source"


def test_model_cross_field_checks():
    base = load_yaml(ROOT / "models" / "mistral-7b.yaml")
    for key, value in (("hidden_size", 4097), ("num_key_value_heads", 3), ("sliding_window", 0),
                       ("parallel_attn_norms", 3), ("num_experts_per_tok", 2)):
        with pytest.raises(InputError) as e:
            build(ModelConfig, {**base, key: value}, Ctx(file="m.yaml"))
        assert e.value.key == key
    vision = load_yaml(ROOT / "models" / "llava1.5-7b.yaml")
    with pytest.raises(InputError) as e:
        build(ModelConfig, {**vision, "vision": {**vision["vision"], "image_size": 330}}, Ctx(file="m.yaml"))
    assert e.value.key == "vision.image_size"


def test_yaml_file_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\nb: 3\n")
    with pytest.raises(InputError, match="well-formed YAML") as e:
        load_yaml(bad)
    assert str(bad) in str(e.value) and "line" in str(e.value)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(InputError, match="empty"):
        load_yaml(empty)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputError):
        load_yaml(binary)


def test_model_loading_errors(tmp_path):
    with pytest.raises(InputError) as e:
        load_model("not-a-model")
    assert e.value.key == "model" and "llama2-7b" in e.value.expected
    p = tmp_path / "m.yaml"
    p.write_text((ROOT / "models" / "llama2-7b.yaml").read_text().replace("torch_dtype: bf16", "torch_dtype: fp64"))
    with pytest.raises(InputError) as e:
        load_model(str(p))
    assert e.value.file == str(p) and e.value.key == "torch_dtype"


def test_arch_unit_string_is_rejected(tmp_path):
    text = (ROOT / "arch" / "sn40l.yaml").read_text()
    line = next(l for l in text.splitlines() if "bandwidth_bytes_per_s" in l)
    p = tmp_path / "a.yaml"
    p.write_text(text.replace(line, line.split("{")[0] + '{value: "200 GB/s", source: "x"}', 1))
    with pytest.raises(InputError) as e:
        load_arch(p)
    assert e.value.file == str(p) and e.value.key.endswith("bandwidth_bytes_per_s.value")
    assert "plain number" in str(e.value)


def test_set_overrides():
    assert parse_set("a.b=3") == ("a.b", 3)
    assert parse_set("x=1e11") == ("x", 1e11)
    with pytest.raises(InputError):
        parse_set("novalue")
    with pytest.raises(InputError):
        parse_set("a..b=1")
    data = {"a": {"b": 1, "c": {"value": 2, "source": "s"}}, "l": [1, 2]}
    out = apply_overrides(data, [("a.b", 5), ("l.1", 9)], "f")
    assert out["a"]["b"] == 5 and out["l"] == [1, 9] and data["a"]["b"] == 1   # the input is not changed
    out = apply_overrides(data, [("a.c", 7)], "f", sourced=True)
    assert out["a"]["c"]["value"] == 7 and "override" in out["a"]["c"]["source"]
    for key in ("a.b.c", "l.5", "l.x"):   # (a new key is created; strict conversion rejects it)
        with pytest.raises(InputError):
            apply_overrides(data, [(key, 1)], "f")
