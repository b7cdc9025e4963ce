"""Closed forms equal the SimPy reference bit for bit: the GPU host/stream timeline and the
RDU launch schedule, on random kernels, costs and machines; and the switch between them."""

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from rdusim.config.arch import load_arch
from rdusim.config.policy import LaunchMode
from rdusim.engine import evaluation
from rdusim.engine.gpu.launch import run_stream, run_stream_events, stream_closed_form
from rdusim.engine.rdu.launch import run_schedule, run_schedule_events

SN40L = load_arch("arch/sn40l.yaml")

times = st.one_of(st.just(0.0), st.floats(1e-9, 1e-2), st.sampled_from([1e-6, 3e-6, 5e-6, 2.5e-5]))


@settings(max_examples=100, deadline=None)
@given(st.lists(times, max_size=30), times, times)
def test_gpu_stream_closed_form_is_the_event_simulation(durations, launch_cost, host_ready):
    assert stream_closed_form(durations, launch_cost, host_ready) == run_stream_events(durations, launch_cost,
                                                                                       host_ready)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(times, st.integers(0, 12)), max_size=30), st.sampled_from([LaunchMode.SOFTWARE,
                                                                                      LaunchMode.HARDWARE]),
       times, times, times, times)
def test_rdu_schedule_closed_form_is_the_event_simulation(kernels, mode, sw, per_stream, hw, host):
    arch = dataclasses.replace(SN40L, launch=dataclasses.replace(SN40L.launch, software_s=sw, hardware_s=hw,
                                                                 software_per_stream_s=per_stream))
    durations = [d for d, _ in kernels]
    streams = [s for _, s in kernels]
    fast = run_schedule(durations, mode, arch, streams, host_s=host)
    assert fast == run_schedule_events(durations, mode, arch, streams, host_s=host)
    assert run_schedule(durations, mode, arch, None, host_s=host) == \
        run_schedule_events(durations, mode, arch, None, host_s=host)


def test_reference_switch_selects_the_events():
    calls = []
    import rdusim.engine.gpu.launch as gl

    orig = gl.run_stream_events
    gl.run_stream_events = lambda *a: calls.append(a) or orig(*a)
    try:
        run_stream([1e-6, 2e-6], 5e-6)
        assert not calls
        with evaluation.reference():
            assert evaluation.current() == evaluation.Evaluation.EVENTS
            run_stream([1e-6, 2e-6], 5e-6)
        assert len(calls) == 1 and evaluation.current() == evaluation.Evaluation.CLOSED_FORM
    finally:
        gl.run_stream_events = orig
