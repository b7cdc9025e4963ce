"""rdusim.engine.fluid.together_s: copies that all start together, without events, equal
bit for bit to the SimPy flow network (the reference), on random networks and on the
shipped machines' expert switch."""

from __future__ import annotations

import simpy
from hypothesis import given, settings, strategies as st

from rdusim.config.arch import load_arch
from rdusim.engine.coe.switching import lone_switch_s, simulate_lone_switch, switch_links
from rdusim.engine.fluid import together_s
from rdusim.engine.transfer import FlowNetwork


def _network_s(links, paths, nbytes) -> float:
    """The reference: the copies on the SimPy flow network, all requested at time 0."""
    env = simpy.Environment()
    net = FlowNetwork(env)
    for link in links:
        net.add_link(*link)
    net.transfer_all(paths, nbytes, [f"c{i}" for i in range(len(paths))])
    env.run()
    return env.now


bandwidth = st.floats(1e6, 1e13, allow_nan=False, allow_infinity=False)
latency = st.sampled_from([0.0, 1e-7, 2e-6, 5e-6, 3.3e-5])


@st.composite
def networks(draw):
    """A shared link, a few per-device links of random speeds, paths through them (devices may
    share a private link, so the flows end at different times), one latency for every path."""
    shared = ("shared", draw(bandwidth), draw(latency))
    n = draw(st.integers(1, 8))
    private = [(f"p{i}", draw(bandwidth), 0.0) for i in range(draw(st.integers(1, n)))]
    paths = []
    for d in range(n):
        via = draw(st.sampled_from(private))[0]
        paths.append(("shared", via) if draw(st.booleans()) else (via, "shared"))
    nbytes = draw(st.one_of(st.just(0.0), st.floats(1.0, 1e12, allow_nan=False)))
    return [shared, *private], paths, nbytes


@settings(max_examples=200, deadline=None, derandomize=True)
@given(networks())
def test_together_equals_the_flow_network_bit_for_bit(net):
    links, paths, nbytes = net
    assert together_s(links, paths, nbytes) == _network_s(links, paths, nbytes)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.integers(1, 8), bandwidth, bandwidth, latency, st.floats(1e6, 1e12))
def test_flows_that_end_at_different_times_take_new_rates(n, fast, slow, lat, nbytes):
    # device 0 has its own slow link; the others share the fast one: two completion times
    links = [("src", 4 * fast, lat), ("fast", fast, 0.0), ("slow", slow, 0.0)]
    paths = [("src", "slow")] + [("src", "fast")] * (n - 1)
    assert together_s(links, paths, nbytes) == _network_s(links, paths, nbytes)


def test_paths_of_different_latencies_need_the_events():
    links = [("a", 1e9, 1e-6), ("b", 1e9, 0.0)]
    assert together_s(links, [("a",), ("b",)], 1e6) is None
    assert together_s(links, [("a",), ("c",)], 1e6) is None          # an unknown link: the network says why
    assert together_s(links, [("a",)], -1.0) is None


def test_the_shipped_machines_switch_an_expert_as_the_network_does():
    for name in ("sn40l", "dgx_h100", "dgx_a100"):
        arch = load_arch(f"arch/{name}.yaml")
        for devices in (1, 4, 8):
            for nbytes in (13.48e9, 1.0, 0.0):
                assert lone_switch_s(arch, devices, nbytes) == simulate_lone_switch(arch, devices, nbytes)
                links, paths = switch_links(arch, devices)
                assert together_s(links, paths, nbytes / devices) is not None


def test_a_slow_ddr_what_if_is_still_exact():
    arch = load_arch("arch/sn40l.yaml", [("socket.ddr.latency_s", {"value": 3e-6, "source": "what-if"}),
                                         ("socket.ddr.bandwidth_bytes_per_s", {"value": 5e10, "source": "what-if"})])
    assert lone_switch_s(arch, 8, 13.48e9) == simulate_lone_switch(arch, 8, 13.48e9)
