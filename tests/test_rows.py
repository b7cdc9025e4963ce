"""Typed result rows: each family's key template writes a key its parser reads back to the
same row (property tests), hand-written keys, shapes that are not rows, and the config
check that keeps platform names readable."""

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdusim import rows
from rdusim.rows.coe import (CoeCapacityRow, CoeFootprintRow, CoePlatformRow, CoePointRow, CoeRunRow,
                             CoeSpeedupRow)
from rdusim.rows.fusion import FusionRow
from rdusim.rows.model import ModelRow, ModelScope
from rdusim.rows.serve import MODES, ServeRow

_ALPHA = "abcdefghijklmnopqrstuvwxyz0123456789_-"
names = st.text(_ALPHA, min_size=1, max_size=12)
segments = st.lists(names, min_size=1, max_size=3).map(".".join)
counts = st.integers(0, 10**6)
values = st.one_of(st.none(), st.integers(-10**9, 10**9), st.floats(allow_nan=False, allow_infinity=False))
cis = st.one_of(st.none(), st.tuples(values, values))


def _ok(build):
    """Rows a strategy draws, skipping the (documented) field combinations a row refuses."""
    def make(args):
        try:
            return build(*args)
        except ValueError:
            return None
    return make


def rows_of(build, *fields):
    return st.lists(st.tuples(*fields).map(_ok(build)).filter(lambda r: r is not None), max_size=12)


FAMILIES = {
    "fusion": rows_of(FusionRow, names, st.one_of(st.none(), names), names, names, values, cis),
    "model": rows_of(ModelRow, names, st.sampled_from(list(ModelScope)), segments, values, cis),
    "serve": rows_of(ServeRow, st.one_of(st.none(), names), st.one_of(st.none(), st.sampled_from(MODES)),
                     st.one_of(st.none(), counts), st.one_of(segments, segments.map("step_cache.{}".format)),
                     values, cis),
    "coe": st.lists(st.one_of(
        st.tuples(names, counts, counts, st.one_of(st.none(), counts), names, values, cis).map(_ok(CoePointRow)),
        st.tuples(names, names, counts, counts, names, values, cis).map(_ok(CoeSpeedupRow)),
        st.tuples(names, names, values, cis).map(lambda a: _ok(CoeSpeedupRow)((a[0], a[1], None, None, "switch",
                                                                                a[2], a[3]))),
        st.tuples(names, names, values, cis).map(_ok(CoeCapacityRow)),
        st.tuples(names, counts, values, cis).map(_ok(CoeFootprintRow)),
        st.tuples(names, names, values, cis).map(_ok(CoePlatformRow)),
        st.tuples(names, values, cis).map(_ok(CoeRunRow)),
    ).filter(lambda r: r is not None), max_size=12),
}


def _unique(drawn):
    """One row per key (a study never writes a key twice; to_metrics refuses it)."""
    return list({r.key(): r for r in drawn}.values())


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_round_trip_rows_metrics_rows(family):
    @settings(max_examples=100, deadline=None)
    @given(FAMILIES[family])
    def check(drawn):
        want = _unique(drawn)
        metrics = rows.to_metrics(want)
        got = rows.FAMILIES[family].from_metrics(metrics)
        assert sorted(got, key=repr) == sorted(want, key=repr)
        assert rows.from_metrics(metrics) == got          # no other family claims these keys
        assert rows.to_metrics(got) == metrics            # and back to the same keys
    check()


def test_keys_by_hand():
    assert FusionRow("b1", None, "fused_ho", "time_s", 1.0).key() == "fusion.b1.fused_ho.time_s"
    assert FusionRow("b1", "dgx_h100", "speedup", "fused_vs_unfused", 2.0).key() == \
        "fusion.b1.dgx_h100.speedup.fused_vs_unfused"
    assert ModelRow("sn40l", ModelScope.RUN, "breakdown.step.host_s", 0.1).key() == "model.sn40l.breakdown.step.host_s"
    assert ModelRow("sn40l_x2", ModelScope.PP, "ttft_s", 0.1).key() == "model.sn40l_x2.pp.ttft_s"
    assert ServeRow("sn40l", "continuous", 3, "ttft.p99_s", 1.0).key() == "serve.sn40l.continuous.load3.ttft.p99_s"
    assert ServeRow(None, None, None, "step_cache.misses", 4).key() == "serve.step_cache.misses"
    assert CoePointRow("sn40l", 8, 20, 500, "latency_s", 1.0).key() == "coe.sn40l.bs8.tok20.experts500.latency_s"
    assert CoeSpeedupRow("sn40l", "dgx_h100", None, None, "switch", 15.5).key() == "coe.speedup.sn40l_vs_dgx_h100.switch"
    assert CoeFootprintRow("dgx_a100", 150, 3).key() == "coe.footprint.dgx_a100.nodes_for150"
    m = rows.to_metrics([CoeSpeedupRow("a", "c", 1, 20, "overall", 2.0, (1.5, 2.5))])
    assert m == {"coe.speedup.a_vs_c.bs1.tok20.overall": 2.0, "coe.speedup.a_vs_c.bs1.tok20.overall.ci95_low": 1.5,
                 "coe.speedup.a_vs_c.bs1.tok20.overall.ci95_high": 2.5}


def test_parsed_fields_by_hand():
    r = rows.lookup({"coe.speedup.sn40l_vs_dgx_h100.bs8.tok20.overall": 3.0,
                     "coe.speedup.sn40l_vs_dgx_h100.bs8.tok20.overall.ci95_low": 2.9,
                     "coe.speedup.sn40l_vs_dgx_h100.bs8.tok20.overall.ci95_high": 3.1},
                    "coe.speedup.sn40l_vs_dgx_h100.bs8.tok20.overall")
    assert r == CoeSpeedupRow("sn40l", "dgx_h100", 8, 20, "overall", 3.0, (2.9, 3.1))
    assert rows.lookup({"model.dgx_h100.prefill.allreduce_s": 5e-5}, "model.dgx_h100.prefill.allreduce_s") == \
        ModelRow("dgx_h100", ModelScope.RUN, "prefill.allreduce_s", 5e-5)
    assert rows.lookup({"x": 1.0, "x.ci95_low": 0.5}, "x") == rows.MetricRow("x", 1.0)     # one bound: no interval
    assert rows.lookup({}, "x") is None
    assert ModelRow("p", ModelScope.RUN, "breakdown.compute_s", 1.0).breakdown_part == "compute"
    assert ModelRow("p", ModelScope.RUN, "breakdown.step.compute_s", 1.0).breakdown_part is None


@pytest.mark.parametrize("key", [
    "fusion.b.time_s", "fusion.a.b.c.d.e", "fusion..m.time_s",         # too short, too long, empty segment
    "model.p", "model.p.spec", "coe.p.bs1.latency_s", "coe.p.bsx.tok1.latency_s", "coe.p.bs01.tok1.latency_s",
    "coe.speedup.a.bs1.tok2.overall", "coe.speedup.a_vs_b.bs1.overall", "coe.footprint.p.nodes",
    "coe.p.bs1.tok2.experts3.x.y", "serve.p", "serve.p.coe", "serve.p.static.load1",
])
def test_keys_of_no_shape_are_not_rows(key):
    assert rows.from_metrics({key: 1.0}) == []


@pytest.mark.parametrize("bad", [
    lambda: FusionRow("a.b", None, "m", "t", 1.0), lambda: FusionRow("b", None, "m", "ci95_low", 1.0),
    lambda: ModelRow("p", ModelScope.RUN, "spec.latency_s", 1.0), lambda: ModelRow("p", ModelScope.RUN, "a..b", 1.0),
    lambda: ServeRow("step_cache", None, None, "x", 1.0), lambda: ServeRow("p", "bursty", None, "x", 1.0),
    lambda: ServeRow("p", None, 2, "x", 1.0), lambda: CoePointRow("speedup", 1, 2, None, "x", 1.0),
    lambda: CoeSpeedupRow("a_vs_b", "c", None, None, "switch", 1.0), lambda: CoePointRow("p", -1, 2, None, "x", 1.0),
    lambda: CoeSpeedupRow("a", "c", None, None, "overall", 1.0),
])
def test_rows_refuse_fields_their_key_would_not_read_back(bad):
    with pytest.raises(ValueError):
        bad()


def test_a_key_written_twice_is_refused():
    with pytest.raises(ValueError, match="twice"):
        rows.to_metrics([FusionRow("b", None, "m", "t", 1.0), FusionRow("b", None, "m", "t", 2.0)])


def test_non_finite_values_survive_as_values():
    m = rows.to_metrics([ServeRow("p", "static", None, "capacity.nodes_for_traffic", math.inf)])
    assert m == {"serve.p.static.capacity.nodes_for_traffic": math.inf}     # results.json writes it as null


@pytest.mark.parametrize("kind, name, expect", [
    ("model", "a.b", "without '.'"), ("coe", "speedup", "reserved"), ("coe", "a_vs_b", "_vs_"),
    ("serve", "step_cache", "reserved"), ("fusion", "sn40l", None), ("model", "speedup", None),
])
def test_platform_names_that_would_not_read_back(kind, name, expect):
    got = rows.platform_name_problem(name, kind)
    assert (got is None) if expect is None else (expect in got)


def test_workload_with_a_dotted_platform_name_is_an_input_error(tmp_path):
    from rdusim.config.workload import load_workload
    from rdusim.errors import InputError
    src = (Path(__file__).parents[1] / "workloads" / "llama2_7b_chat.yaml").read_text()
    assert "  sn40l:" in src
    wl = tmp_path / "w.yaml"
    wl.write_text(src.replace("  sn40l:", "  sn40l.v2:", 1))
    with pytest.raises(InputError) as exc:
        load_workload(str(wl))
    assert exc.value.key == "platforms.sn40l.v2" and "without '.'" in str(exc.value)
