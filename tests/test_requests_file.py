"""The per-request side file (rdusim.requests_file): request records leave results.json for
requests.csv and come back, in their place and to the bit, when the results are loaded."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdusim import requests_file
from rdusim.errors import InputError
from rdusim.results import RunResult, load_result

floats = st.floats(allow_nan=False, width=64) | st.sampled_from([math.inf, -0.0, 5e-324, 1e-7])


@st.composite
def request(draw):
    done = draw(st.booleans())
    lat = (lambda: draw(floats)) if done else (lambda: None)
    return {"row": "request", "platform": draw(st.sampled_from(["sn40l", "dgx_h100"])),
            "batching": draw(st.sampled_from(["continuous", "static", "coe"])), "id": draw(st.integers(0, 10**6)),
            "arrival_s": draw(floats), "prompt_tokens": draw(st.integers(1, 4096)),
            "output_tokens": draw(st.integers(1, 4096)), "expert": draw(st.integers(-1, 150)), "queue_s": lat(),
            "ttft_s": lat(), "tpot_s": lat(), "e2e_s": lat(), "preemptions": draw(st.integers(0, 9)),
            "switches": draw(st.integers(0, 9)), "completed": done}


other = st.fixed_dictionaries({"row": st.just("timeseries"), "platform": st.just("sn40l"), "t_s": floats})


@settings(max_examples=60, deadline=None)
@given(st.lists(request() | other, max_size=30))
def test_split_then_expand_gives_the_records_back_to_the_bit(tmp_path_factory, records):
    folder = tmp_path_factory.mktemp("run")
    kept, rows = requests_file.split(records)
    assert not [r for r in kept if r.get("row") == "request"]
    assert sum(r["count"] for r in kept if r["row"] == "requests") == len(rows)
    (folder / requests_file.REQUESTS_CSV).write_text(requests_file.csv_text(rows))
    back = requests_file.expand(kept, folder)
    assert json.dumps(back) == json.dumps(records)
    assert [[type(v) for v in r.values()] for r in back] == [[type(v) for v in r.values()] for r in records]


def _req(i, done=True):
    lat = 0.1 * i + 1e-9 if done else None
    return {"row": "request", "platform": "sn40l", "batching": "continuous", "id": i, "arrival_s": i / 3,
            "prompt_tokens": 100 + i, "output_tokens": 7, "expert": -1, "queue_s": lat, "ttft_s": lat,
            "tpot_s": lat, "e2e_s": lat, "preemptions": 0, "switches": i, "completed": done}


def _result(records):
    return RunResult(workload_name="w", kind="serve", resolved={}, archs={}, seed=0, metrics={"serve.x": 1.0},
                     records=tuple(records))


def test_a_written_run_folder_loads_its_requests_back(tmp_path):
    reqs = [_req(i, done=i != 2) for i in range(5)]
    records = reqs[:3] + [{"row": "timeseries", "platform": "sn40l", "t_s": 0.5}] + reqs[3:]
    path = _result(records).write(tmp_path)
    data = json.loads(path.read_text())
    assert [r["row"] for r in data["records"]] == ["requests", "timeseries", "requests"]
    assert (tmp_path / "requests.csv").read_text().count("\n") == 6
    assert list(load_result(path).records) == records
    # without the side file the pointers stay (the report then lacks the request figures)
    (tmp_path / "requests.csv").unlink()
    assert [r["row"] for r in load_result(path).records] == ["requests", "timeseries", "requests"]


def test_a_run_without_request_records_writes_no_side_file(tmp_path):
    _result([{"row": "kernel", "name": "k"}]).write(tmp_path)
    assert not (tmp_path / "requests.csv").exists()


def test_a_requests_file_with_other_columns_is_refused_naming_it(tmp_path):
    path = _result([_req(1)]).write(tmp_path)
    (tmp_path / "requests.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="requests.csv"):
        load_result(path)
