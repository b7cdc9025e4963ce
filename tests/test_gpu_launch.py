"""Host launch vs GPU stream: hidden behind long kernels, exposed with short ones."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdusim.config.arch import load_arch
from rdusim.config.policy import LaunchMode
from rdusim.engine.gpu.launch import launch_cost_s, run_stream

US = 1e-6


def test_launch_hidden_behind_long_kernels():
    tl = run_stream([20 * US] * 50, 5 * US)
    # only the first launch is exposed; the host runs ahead of the stream
    assert tl.exposed_s[0] == pytest.approx(5 * US)
    assert sum(tl.exposed_s[1:]) == pytest.approx(0.0, abs=1e-12)
    assert tl.end == pytest.approx(5 * US + 50 * 20 * US)
    assert all(tl.start_s[i] - tl.issue_s[i] >= 0 for i in range(50))


def test_launch_exposed_with_short_kernels():
    tl = run_stream([1 * US] * 50, 5 * US)
    # the GPU waits for every launch: the host is the bottleneck
    assert tl.end == pytest.approx(50 * 5 * US + 1 * US)
    assert tl.exposed_total_s == pytest.approx(5 * US + 49 * 4 * US)


def test_framework_time_delays_the_first_launch():
    tl = run_stream([10 * US] * 3, 1 * US, host_ready_s=2e-3)
    assert tl.start_s[0] == pytest.approx(2e-3 + 1 * US)
    assert tl.exposed_s[0] == pytest.approx(1 * US)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 50e-6), min_size=1, max_size=60), st.floats(0, 10e-6), st.floats(0, 1e-3))
def test_stream_time_is_host_plus_gaps_plus_kernels(durs, cost, ready):
    tl = run_stream(durs, cost, ready)
    assert tl.end == pytest.approx(ready + tl.exposed_total_s + sum(durs), rel=1e-9, abs=1e-15)
    assert tl.end >= ready + len(durs) * cost - 1e-15          # never faster than the host
    assert tl.end >= ready + sum(durs) - 1e-15                 # never faster than the GPU
    assert all(s >= i - 1e-15 for s, i in zip(tl.start_s, tl.issue_s))


def test_launch_costs_come_from_the_arch_file():
    arch = load_arch("arch/dgx_h100.yaml")
    assert launch_cost_s(arch, LaunchMode.CUDA_EAGER) == arch.launch.eager_s
    assert launch_cost_s(arch, LaunchMode.CUDA_GRAPH) == arch.launch.graph_s
    with pytest.raises(ValueError):
        launch_cost_s(arch, LaunchMode.HARDWARE)
