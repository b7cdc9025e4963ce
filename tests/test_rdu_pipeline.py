"""The streaming pipeline of one kernel (SimPy): closed forms, backpressure, conservation,
utilisation bounds, the roofline floor and determinism, on hand-built kernels."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdusim.compiler.plan import Kernel, Stage, StageKind, Stream, Tier
from rdusim.config.arch import load_arch
from rdusim.config.arch_common import CollectiveSpec, Fabric, Link
from rdusim.engine.rdu.hardware import SocketHw
from rdusim.engine.rdu.pipeline import simulate_kernel

HBM_BW = 1e12


def hw(d2d_bw: float = 1e12) -> SocketHw:
    return SocketHw(tier_bw={Tier.HBM: HBM_BW, Tier.DDR: 1e11, Tier.HOST: 1e10},
                    tier_latency={Tier.HBM: 0.0, Tier.DDR: 0.0, Tier.HOST: 0.0},
                    agcu_bw=1e15, pmu_bw=1e15, p2p=Fabric(1e11, 0.0), d2d=Link(d2d_bw, 0.0),
                    pcu_count=100, pmu_count=100, hbm_peak_bw=HBM_BW, collectives=CollectiveSpec(0.0))


def stage(compute_s: float, inputs=(), streams=(), pcus: int = 1, die: int = 0, edge_d2d=None) -> Stage:
    inputs = tuple(inputs)
    return Stage(kind=StageKind.COMPUTE, flops=compute_s * 1e12, compute_s=compute_s, pcus=pcus, pmus=1,
                 pmus_bandwidth=1, in_bytes=0.0, inputs=inputs, edge_bytes=tuple(1.0 for _ in inputs),
                 edge_d2d=tuple(edge_d2d or (False,) * len(inputs)), streams=tuple(streams), die=die)


def chain(times: list[float], streams: dict[int, list[Stream]] | None = None) -> Kernel:
    streams = streams or {}
    stages = tuple(stage(t, () if i == 0 else (i - 1,), streams.get(i, ())) for i, t in enumerate(times))
    return Kernel("k", tuple(f"s{i}" for i in range(len(times))), stages)


def read(nbytes: float, resident: bool = False) -> Stream:
    return Stream(Tier.HBM, False, nbytes, resident, 1.0)


def write(nbytes: float) -> Stream:
    return Stream(Tier.HBM, True, nbytes, False, 1.0)


def test_single_stage_matches_its_closed_form():
    n, c = 16, 1e-3
    assert simulate_kernel(chain([c]), hw(), n).duration_s == pytest.approx(c)
    # a load stream feeding one stage: fill (one load tile) + n x the slower of load and compute
    load = 4e-3 * HBM_BW                  # 4 ms of HBM time for the whole stream
    k = chain([c], {0: [read(load)]})     # memory-bound: n load tiles, then the last compute tile
    assert simulate_kernel(k, hw(), n).duration_s == pytest.approx(4e-3 + c / n)
    k = chain([8e-3], {0: [read(load)]})  # compute-bound: one load tile, then n compute tiles
    assert simulate_kernel(k, hw(), n).duration_s == pytest.approx(4e-3 / n + 8e-3)


def test_balanced_pipeline_is_fill_plus_n_bottlenecks():
    n, s, c = 32, 5, 2e-3
    dur = simulate_kernel(chain([c] * s), hw(), n).duration_s
    assert dur == pytest.approx((n + s - 1) * c / n)
    # an unbalanced one: the slowest stage sets the pace, the others only add fill
    times = [1e-3, 4e-3, 2e-3]
    dur = simulate_kernel(chain(times), hw(), n).duration_s
    assert dur == pytest.approx((1e-3 + 2e-3) / n + 4e-3)


def test_backpressure_blocks_a_fast_producer():
    n = 12
    log: list = []
    simulate_kernel(chain([1e-3, 6e-3]), hw(), n, log)
    blocked = [t for what, t in log if what == "s0:blocked"]
    assert blocked, "the producer never met a full buffer"
    # once the 2-tile buffer is full the producer runs at the consumer's pace
    starts = [t for what, t in log if what.startswith("s0:tile")]
    late_gaps = [b - a for a, b in zip(starts[5:], starts[6:])]
    assert all(g == pytest.approx(6e-3 / n) for g in late_gaps)
    consumer = [t for what, t in log if what.startswith("s1:tile")]
    assert consumer[0] == pytest.approx(1e-3 / n)


def test_resident_operand_loads_before_the_first_tile():
    n = 8
    log: list = []
    k = chain([1e-3], {0: [read(2e-3 * HBM_BW, resident=True)]})
    dur = simulate_kernel(k, hw(), n, log).duration_s
    loaded = next(t for what, t in log if what == "s0:resident_loaded")
    first = next(t for what, t in log if what == "s0:tile0")
    assert loaded == pytest.approx(2e-3) and first >= loaded
    assert dur == pytest.approx(3e-3)


def test_streams_share_the_memory_tier():
    n = 16
    two = chain([1e-6, 1e-6], {0: [read(1e-3 * HBM_BW)], 1: [read(1e-3 * HBM_BW)]})
    assert simulate_kernel(two, hw(), n).duration_s >= 2e-3 - 1e-12


def test_die_crossing_edges_use_the_d2d_link():
    n = 8
    near = Kernel("k", ("a", "b"), (stage(1e-6), stage(1e-6, (0,))))
    far = Kernel("k", ("a", "b"), (stage(1e-6), stage(1e-6, (0,), die=1, edge_d2d=(True,))))
    big = 1e-3 * 1e9   # edge bytes for a 1 ms transfer on a 1 GB/s link
    far = Kernel("k", far.ops, (far.stages[0], Stage(**{**far.stages[1].__dict__, "edge_bytes": (big,)})))
    run = simulate_kernel(far, hw(d2d_bw=1e9), n)
    assert run.d2d_bytes == pytest.approx(big)
    assert run.duration_s > simulate_kernel(near, hw(d2d_bw=1e9), n).duration_s + 0.9e-3


@st.composite
def kernels(draw):
    count = draw(st.integers(1, 5))
    stages = []
    for i in range(count):
        streams = []
        if draw(st.booleans()):
            streams.append(read(draw(st.floats(1e3, 1e8)), resident=draw(st.booleans())))
        if draw(st.booleans()):
            streams.append(write(draw(st.floats(1e3, 1e8))))
        inputs = (i - 1,) if i else ()
        stages.append(stage(draw(st.floats(1e-7, 1e-3)), inputs, streams, pcus=draw(st.integers(1, 20))))
    return Kernel("k", tuple(f"s{i}" for i in range(count)), tuple(stages))


@settings(max_examples=40, deadline=None)
@given(kernels(), st.integers(1, 32))
def test_roofline_floor_conservation_and_bounded_utilisation(kernel, tiles):
    run = simulate_kernel(kernel, hw(), tiles)
    hbm = kernel.bytes_by_tier().get("hbm", 0.0)
    # bytes conserved: what the streams moved is what the plan says
    assert run.bytes_by_tier["hbm"] == pytest.approx(hbm, rel=1e-9, abs=1e-6)
    # never faster than the roofline: the busiest stage, the memory tier
    floor = max(max(s.compute_s for s in kernel.stages), hbm / HBM_BW)
    assert run.duration_s >= floor * (1 - 1e-9)
    assert 0.0 <= run.pcu_busy <= 1.0 + 1e-9
    assert run.tier_busy_s["hbm"] <= run.duration_s * (1 + 1e-9)


def test_same_kernel_same_result():
    k = chain([1e-3, 2e-3, 5e-4], {0: [read(3e8)], 2: [write(1e8)]})
    assert simulate_kernel(k, hw(), 24) == simulate_kernel(k, hw(), 24)


def test_socket_hw_comes_from_the_arch():
    arch = load_arch("arch/sn40l.yaml")
    h = SocketHw.of(arch)
    assert h.tier_bw[Tier.HBM] == pytest.approx(arch.socket.hbm.effective_bandwidth_bytes_per_s)
    assert h.pcu_count == arch.socket.pcu.count


def test_kernel_key_names_only_the_hardware_the_kernel_uses():
    import dataclasses

    from rdusim.cache import content_key

    def key(h, k):
        return content_key(h.for_kernel(k))

    hbm_only = chain([1e-3, 2e-3], {0: [read(3e8)], 1: [write(1e8)]})
    base = hw()
    other_ddr = dataclasses.replace(base, tier_bw={**base.tier_bw, Tier.DDR: 5e10}, p2p=Fabric(1e9, 1e-6))
    assert key(base, hbm_only) == key(other_ddr, hbm_only)
    faster_hbm = dataclasses.replace(base, tier_bw={**base.tier_bw, Tier.HBM: 2 * HBM_BW})
    assert key(base, hbm_only) != key(faster_hbm, hbm_only)
    from_ddr = chain([1e-3], {0: [Stream(Tier.DDR, False, 3e8, False, 1.0)]})
    assert key(base, from_ddr) != key(other_ddr, from_ddr)
    assert simulate_kernel(from_ddr, base, 8).duration_s < simulate_kernel(from_ddr, other_ddr, 8).duration_s
    # the view is what the kernel is simulated on: it gives the same run as the whole socket
    assert simulate_kernel(from_ddr, base.for_kernel(from_ddr), 8) == simulate_kernel(from_ddr, base, 8)
