"""A step's records made when first read stand for the tuple they make."""

import pickle

from rdusim.engine.step import Records, StepResult


def test_records_are_made_once_when_first_read_and_act_as_their_tuple():
    calls = []

    def make():
        calls.append(1)
        return [{"name": "a", "t": 1.0}, {"name": "b", "t": 2.0}]

    r = Records(make)
    assert calls == []                                  # nothing built yet
    assert len(r) == 2 and r[1]["name"] == "b" and [x["t"] for x in r] == [1.0, 2.0]
    assert calls == [1]                                 # built once
    assert r == ({"name": "a", "t": 1.0}, {"name": "b", "t": 2.0}) == r
    assert r != ({"name": "a", "t": 1.0},)
    assert pickle.loads(pickle.dumps(r)) == r and type(pickle.loads(pickle.dumps(r))) is tuple
    assert repr(r) == repr(r.rows())


def test_a_step_result_with_lazy_records_equals_one_with_the_tuple():
    rows = ({"name": "k", "time_s": 0.5},)
    kw = dict(time_s=0.5, kernels=1, flops=1.0, bytes_by_tier={}, breakdown_s={}, util={})
    lazy, eager = StepResult(records=Records(lambda: list(rows)), **kw), StepResult(records=rows, **kw)
    assert lazy == eager
    back = pickle.loads(pickle.dumps(lazy))
    assert back == eager and back.records == rows
