"""The fast results writer gives what the general one gave: same plain data, same parsed JSON."""

import dataclasses
import enum
import json
import math
from types import MappingProxyType
from typing import Any, Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from rdusim.results import RunResult, dumps_results, plain


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass(frozen=True)
class Point:
    x: Any
    y: Any


def reference_plain(obj: Any) -> Any:
    """The writer before the fast path (isinstance checks all the way down)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: reference_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Mapping):
        return {str(k): reference_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [reference_plain(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=5), st.sampled_from(list(Color)))
keys = st.one_of(st.text(max_size=4), st.integers(), st.sampled_from(list(Color)))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(keys, inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=3).map(MappingProxyType),
        st.builds(Point, inner, inner)),
    max_leaves=25)


def _nan_safe(x):
    return json.loads(json.dumps(x))


@settings(max_examples=80, deadline=None)
@given(values)
def test_fast_plain_equals_reference(obj):
    assert _nan_safe(plain(obj)) == _nan_safe(reference_plain(obj))
    assert type(plain(obj)) is type(reference_plain(obj))


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.text(max_size=6), st.floats(allow_nan=False), max_size=6),
       st.lists(st.dictionaries(st.text(max_size=4), values, max_size=4), max_size=4), values)
def test_written_json_parses_to_the_same_data(metrics, records, extra):
    result = RunResult("w", "fusion", {"a": 1}, {}, 3, metrics, tuple(records), extra={"x": extra})
    data = result.to_json()
    assert json.loads(dumps_results(data)) == json.loads(json.dumps(data, indent=1))


def test_written_file_is_one_metric_and_one_record_per_line(tmp_path):
    result = RunResult("w", "fusion", {}, {}, 0, {"b.x": 2.5, "a.y": float("nan")}, ({"r": 1}, {"r": 2}))
    text = result.write(tmp_path).read_text()
    assert '  "a.y": null,\n  "b.x": 2.5\n' in text
    assert '  {"r":1},\n  {"r":2}\n' in text


flat_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                        st.text(max_size=5))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.dictionaries(st.text(max_size=4), flat_values, max_size=6),
                          st.dictionaries(keys, values, max_size=3)), max_size=6))
def test_record_fast_path_writes_the_same_text(records):
    """write() encodes records as they are (flat ones straight by orjson): the same text as
    encoding their plain form."""
    result = RunResult("w", "fusion", {}, {}, 0, {"m": 1.0}, tuple(records))
    assert dumps_results(result.to_json(_raw_records=True)) == dumps_results(result.to_json())


def test_record_fast_path_by_hand(tmp_path):
    records = ({"k": "a", "t": 1.5, "n": 3, "ok": True, "none": None}, {"t": float("nan")}, {1: Color.RED})
    text = RunResult("w", "fusion", {}, {}, 0, {}, records).write(tmp_path).read_text()
    assert ('  {"k":"a","t":1.5,"n":3,"ok":true,"none":null},\n  {"t":null},\n  {"1":"red"}\n'
            in text)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=4), flat_values, max_size=6), max_size=6))
def test_records_parse_to_what_the_json_module_writes(records):
    """orjson's text for a record parses to the very numbers the json module's does
    (shortest round-trip floats; non-finite ones null; integers beyond 64 bits too)."""
    records = records + [{"big": 2 ** 70, "neg": -2 ** 65, "tiny": 5e-324, "z": -0.0}]
    text = dumps_results(RunResult("w", "fusion", {}, {}, 0, {}, tuple(records)).to_json(_raw_records=True))
    got = json.loads(text)["records"]
    want = json.loads(json.dumps([reference_plain(r) for r in records]))
    assert got == want
    assert [repr(v) for r in got for v in r.values()] == [repr(v) for r in want for v in r.values()]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["a", "b", "},{", "k"]),
                                st.one_of(st.sampled_from(["},{", "x},{y", "}", "{", ""]), st.integers(-3, 3),
                                          st.lists(st.dictionaries(st.just("n"), st.integers(0, 2)), max_size=3)),
                                max_size=4), min_size=1, max_size=6))
def test_records_in_one_call_lay_out_as_one_at_a_time(records):
    """All plain records are encoded by one orjson call and split into lines at ``},{``: the
    same text as encoding each alone, also when a record holds that text itself."""
    from rdusim.results import _record_json

    text = dumps_results(RunResult("w", "fusion", {}, {}, 0, {}, tuple(records)).to_json(_raw_records=True))
    lines = ",\n".join("  " + _record_json(r) for r in records)
    assert ' "records": [\n' + lines + "\n ]" in text
    assert json.loads(text)["records"] == records
