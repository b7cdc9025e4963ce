"""FlowNetwork: latency + bandwidth, max-min fair sharing, closed-form end times, conservation."""

import math

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from rdusim.engine.transfer import FlowNetwork

GB = 1e9


def _net(links):
    env = simpy.Environment()
    net = FlowNetwork(env)
    for name, bw, lat in links:
        net.add_link(name, bw, lat)
    return env, net


def test_lone_copy_takes_latency_plus_bytes_over_bandwidth():
    env, net = _net([("pcie", 64 * GB, 5e-6)])
    ev = net.transfer(["pcie"], 13.5e9, label="expert")
    env.run()
    assert ev.triggered
    (rec,) = net.records
    assert rec.label == "expert" and rec.path == ("pcie",)
    assert rec.end_s == pytest.approx(5e-6 + 13.5e9 / (64 * GB), rel=1e-12)


def test_path_pays_every_latency_and_the_tightest_bandwidth():
    env, net = _net([("a", 10 * GB, 1e-6), ("b", 4 * GB, 2e-6)])
    net.transfer(["a", "b"], 8e9)
    env.run()
    assert net.records[0].end_s == pytest.approx(3e-6 + 2.0, rel=1e-12)


def _dgx_like(n=8, per_gpu=64 * GB, agg=64 * GB):
    links = [("host_aggregate", agg, 0.0)] + [(f"pcie{i}", per_gpu, 0.0) for i in range(n)]
    return _net(links)


def test_eight_concurrent_copies_share_the_host_aggregate_equally():
    env, net = _dgx_like()
    size = 16e9
    for i in range(8):
        net.transfer(["host_aggregate", f"pcie{i}"], size, label=f"gpu{i}")
    env.run()
    ends = [r.end_s for r in net.records]
    # each gets 64/8 = 8 GB/s: 2 s for 16 GB, all at once
    assert ends == pytest.approx([size / (8 * GB)] * 8, rel=1e-12)
    # alone, one copy would take an eighth of that
    env2, net2 = _dgx_like()
    net2.transfer(["host_aggregate", "pcie0"], size)
    env2.run()
    assert net2.records[0].end_s == pytest.approx(size / (64 * GB), rel=1e-12)


def test_unequal_sizes_finish_at_closed_form_times():
    env, net = _net([("shared", 10 * GB, 0.0)])
    sizes = [1e9, 3e9, 6e9]
    for s in sizes:
        net.transfer(["shared"], s, label=str(s))
    env.run()
    end = {r.label: r.end_s for r in net.records}
    b = 10 * GB
    t1 = 3 * 1e9 / b                 # three flows at b/3 until the 1 GB one ends
    t2 = t1 + 2 * (3e9 - 1e9) / b    # two flows at b/2
    t3 = t2 + (6e9 - 3e9) / b        # the last alone
    assert end[str(1e9)] == pytest.approx(t1, rel=1e-12)
    assert end[str(3e9)] == pytest.approx(t2, rel=1e-12)
    assert end[str(6e9)] == pytest.approx(t3, rel=1e-12)
    assert t3 == pytest.approx(sum(sizes) / b)


def test_max_min_fairness_gives_spare_capacity_to_unconstrained_flows():
    # flow A is held to 2 GB/s by its own link; B takes the rest of the shared 10 GB/s
    env, net = _net([("shared", 10 * GB, 0.0), ("slow", 2 * GB, 0.0), ("fast", 100 * GB, 0.0)])
    net.transfer(["shared", "slow"], 2e9, label="A")
    net.transfer(["shared", "fast"], 8e9, label="B")
    env.run()
    end = {r.label: r.end_s for r in net.records}
    assert end["A"] == pytest.approx(1.0, rel=1e-12)
    assert end["B"] == pytest.approx(1.0, rel=1e-12)


def test_late_starter_reshapes_rates():
    env, net = _net([("l", 1 * GB, 0.0)])
    net.transfer(["l"], 2e9, label="first")

    def later():
        yield env.timeout(1.0)
        yield net.transfer(["l"], 1e9, label="second")

    env.process(later())
    env.run()
    end = {r.label: r.end_s for r in net.records}
    # first: 1 GB alone in 1 s, then shares: 1 GB left at 0.5 GB/s with second -> both end at 3 s
    assert end["first"] == pytest.approx(3.0, rel=1e-12)
    assert end["second"] == pytest.approx(3.0, rel=1e-12)
    assert net.records[1].start_s == 1.0


def test_zero_byte_transfer_pays_latency_only():
    env, net = _net([("l", 1 * GB, 7e-6)])
    net.transfer(["l"], 0)
    env.run()
    assert net.records[0].end_s == pytest.approx(7e-6)


def test_bad_calls_are_rejected():
    env, net = _net([("l", 1 * GB, 0.0)])
    with pytest.raises(ValueError):
        net.transfer(["nope"], 1)
    with pytest.raises(ValueError):
        net.transfer([], 1)
    with pytest.raises(ValueError):
        net.transfer(["l"], -1)
    with pytest.raises(ValueError):
        net.add_link("l", 1.0)
    with pytest.raises(ValueError):
        net.add_link("z", 0.0)


flows = st.lists(
    st.tuples(st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=3, unique=True),
              st.floats(0, 1e10), st.floats(0, 2.0)),
    min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(flows)
def test_property_bytes_conserved_and_no_flow_beats_its_path(spec):
    bw = {"a": 5 * GB, "b": 1 * GB, "c": 20 * GB, "d": 3 * GB}
    lat = {"a": 1e-6, "b": 0.0, "c": 3e-5, "d": 2e-6}
    env, net = _net([(k, bw[k], lat[k]) for k in bw])

    def start(path, n, at, i):
        yield env.timeout(at)
        net.transfer(path, n, label=str(i))

    for i, (path, n, at) in enumerate(spec):
        env.process(start(path, n, at, i))
    env.run()
    assert len(net.records) == len(spec)
    for r in net.records:
        floor = sum(lat[p] for p in r.path) + r.nbytes / min(bw[p] for p in r.path)
        assert r.end_s >= r.start_s + floor * (1 - 1e-9)
    carried = net.link_bytes
    for k in bw:
        expect = sum(n for path, n, _ in spec if k in path)
        assert math.isclose(carried[k], expect, rel_tol=1e-9, abs_tol=1e-3)
    # total work is bounded below by the busiest link
    for k in bw:
        assert max(r.end_s for r in net.records) >= carried[k] / bw[k] * (1 - 1e-9)


def test_deterministic():
    def run():
        env, net = _dgx_like()
        for i in range(8):
            net.transfer(["host_aggregate", f"pcie{i}"], (i + 1) * 1e9, label=str(i))
        env.run()
        return net.records
    assert run() == run()


def test_group_transfer_is_transfer_all_labelled_when_read():
    """A copier on checked paths starts what transfer_all starts: the same landings at the
    same times, each copy labelled ``label + suffix`` of its path."""
    links = [("h", 4 * GB, 1e-3), ("p0", 1 * GB, 0.0), ("p1", 2 * GB, 0.0)]
    paths, times = [("h", "p0"), ("h", "p1")], {}
    for how in ("all", "group"):
        env, net = _net(links)
        copy = net.group_transfer(paths, [".d0", ".d1"]) if how == "group" else None

        def driver():
            for i in range(3):
                if how == "all":
                    yield net.transfer_all(paths, 1 * GB, [f"c{i}.d0", f"c{i}.d1"])
                else:
                    yield copy(1 * GB, f"c{i}")
                times.setdefault(how, []).append(env.now)

        env.process(driver())
        env.run()
        times[how + " records"] = net.records
    assert times["group"] == times["all"]
    assert times["group records"] == times["all records"]
    assert [(r.label, r.path) for r in times["group records"]][:2] == [("c0.d1", ("h", "p1")), ("c0.d0", ("h", "p0"))]
    env, net = _net(links)
    with pytest.raises(ValueError):
        net.group_transfer(paths, [".d0"])          # a suffix per path
    with pytest.raises(ValueError):
        net.group_transfer([("h", "nope")], [".d0"])
    with pytest.raises(ValueError):
        net.group_transfer(paths, [".d0", ".d1"])(-1.0, "x")
