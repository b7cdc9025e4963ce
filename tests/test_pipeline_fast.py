"""The fast kernel pipeline (pipeline_fast) is the SimPy model (pipeline_events), every field.

Random kernels (stages of every kind, edges within and across the dies, load / write /
resident streams on every tier with AGCU shares, collective stages, buffer depths 1-4,
re-streaming passes, 1-64 tiles) on random sockets. Times are drawn from small sets of
round values as often as from ranges, so that requests for a shared channel (the memory
tiers, P2P, D2D) often arrive at the same instant: those ties are where an evaluation
that did not keep SimPy's event order would differ. The two must agree bit for bit
(which is stronger than the 1e-9 relative the fast path is allowed).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rdusim.compiler.plan import Collective, Kernel, Stage, StageKind, Stream, Tier
from rdusim.config.arch_common import CollectiveAlgorithm, CollectiveSpec, Fabric, Link, Topology
from rdusim.engine import evaluation
from rdusim.engine.rdu import pipeline
from rdusim.engine.rdu.hardware import SocketHw
from rdusim.engine.rdu.pipeline_events import simulate_kernel_events
from rdusim.engine.rdu.pipeline_fast import simulate_kernel_fast


def _mixed(lo: float, hi: float, round_values: list[float]):
    return st.one_of(st.sampled_from(round_values), st.floats(lo, hi, allow_nan=False, allow_infinity=False))


seconds = _mixed(1e-9, 1e-2, [0.0, 1e-6, 2e-6, 4e-6, 1e-3])
latencies = _mixed(1e-9, 1e-4, [0.0, 0.0, 5e-7, 1e-6])
rates = _mixed(1e8, 1e13, [1e9, 1e10, 1e11, 1e12])
nbytes = _mixed(1.0, 1e9, [0.0, 1e6, 4e6, 2 ** 20, 64e6])


@st.composite
def streams(draw):
    kind = draw(st.sampled_from(["load", "load", "write", "resident"]))
    return Stream(draw(st.sampled_from(list(Tier))), kind == "write", draw(nbytes), kind == "resident",
                  draw(st.sampled_from([1.0, 0.5, 0.25, 2.0, 4.0])))


@st.composite
def kernels(draw):
    count = draw(st.integers(1, 6))
    stages = []
    for i in range(count):
        kind = draw(st.sampled_from(list(StageKind)))
        inputs = tuple(draw(st.lists(st.integers(0, i - 1), max_size=3))) if i else ()   # repeats too
        collective = None
        if kind == StageKind.COLLECTIVE and draw(st.booleans()):
            collective = Collective(draw(st.sampled_from(["allreduce", "allgather"])), draw(nbytes),
                                    draw(st.integers(1, 8)))
        stages.append(Stage(
            kind=kind, flops=1.0, compute_s=draw(seconds), pcus=draw(st.integers(0, 40)), pmus=1,
            pmus_bandwidth=draw(st.integers(0, 8)), in_bytes=draw(st.sampled_from([0.0, 0.0, 1e6, 3e7])),
            inputs=inputs, edge_bytes=tuple(draw(nbytes) for _ in inputs),
            edge_d2d=tuple(draw(st.booleans()) for _ in inputs),
            streams=tuple(draw(st.lists(streams(), max_size=3))), collective=collective, die=i % 2))
    return Kernel("k", tuple(f"s{i}" for i in range(count)), tuple(stages),
                  passes=draw(st.integers(1, 3)), buffer_depth=draw(st.integers(1, 4)))


@st.composite
def fabrics(draw):
    topology = draw(st.sampled_from(list(Topology)))
    switch = topology == Topology.SWITCH
    ports = st.integers(1, 2) if topology == Topology.RING else st.integers(7, 8)    # a full mesh of 8 ranks
    return Fabric(draw(rates), draw(latencies), ports=draw(ports),
                  topology=topology, in_network_reduction=switch and draw(st.booleans()))


@st.composite
def sockets(draw):
    return SocketHw(
        tier_bw={t: draw(rates) for t in Tier}, tier_latency={t: draw(latencies) for t in Tier},
        agcu_bw=draw(rates), pmu_bw=draw(rates),
        p2p=draw(fabrics()),
        d2d=Link(draw(rates), draw(latencies), draw(st.sampled_from([1.0, 0.9, 0.5]))),
        pcu_count=1040, pmu_count=1040, hbm_peak_bw=1e12,
        collectives=CollectiveSpec(draw(latencies),
                                   draw(st.sampled_from([CollectiveAlgorithm.AUTO, CollectiveAlgorithm.RING]))))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kernels(), sockets(), st.integers(1, 64))
def test_fast_pipeline_is_the_simpy_model(kernel, hw, tiles):
    fast = simulate_kernel_fast(kernel, hw, tiles)
    ref = simulate_kernel_events(kernel, hw, tiles)
    assert fast == ref
    # and field by field, so a failure names the field
    for name in ref.__dataclass_fields__:
        assert getattr(fast, name) == getattr(ref, name), name


def test_contended_tier_and_links_follow_simpy_tie_order():
    """Hand-built worst case for ties: four equal load streams and two writes on one tier, a
    resident load, zero-latency D2D crossings and a collective, all in step from time 0."""
    hbm = [Stream(Tier.HBM, False, 1e6, False, 1.0) for _ in range(4)]
    s0 = Stage(StageKind.COMPUTE, 1.0, 1e-6, 4, 1, 1, 0.0, streams=tuple(hbm[:2]) +
               (Stream(Tier.HBM, False, 2e6, True, 0.5),))
    s1 = Stage(StageKind.MOVE, 1.0, 1e-6, 0, 1, 1, 0.0, inputs=(0,), edge_bytes=(1e6,), edge_d2d=(True,),
               streams=tuple(hbm[2:]) + (Stream(Tier.HBM, True, 1e6),))
    s2 = Stage(StageKind.COLLECTIVE, 1.0, 0.0, 0, 1, 1, 0.0, inputs=(0, 1), edge_bytes=(1e6, 1e6),
               edge_d2d=(False, True), streams=(Stream(Tier.HBM, True, 1e6),),
               collective=Collective("allreduce", 4e6, 4))
    hw = SocketHw(tier_bw={t: 1e12 for t in Tier}, tier_latency={t: 0.0 for t in Tier}, agcu_bw=1e12,
                  pmu_bw=1e12, p2p=Fabric(1e11, 0.0), d2d=Link(1e12, 0.0), pcu_count=1, pmu_count=1,
                  hbm_peak_bw=1e12, collectives=CollectiveSpec(0.0))
    for depth in (1, 2, 4):
        k = Kernel("k", ("a", "b", "c"), (s0, s1, s2), buffer_depth=depth)
        assert simulate_kernel_fast(k, hw, 32) == simulate_kernel_events(k, hw, 32)


def test_simulate_kernel_uses_the_fast_path_unless_reference_or_a_log(monkeypatch):
    calls = []
    orig = pipeline.simulate_kernel_events
    monkeypatch.setattr(pipeline, "simulate_kernel_events", lambda *a: calls.append(a) or orig(*a))
    k = Kernel("k", ("a",), (Stage(StageKind.COMPUTE, 1.0, 1e-3, 1, 1, 1, 0.0,
                                   streams=(Stream(Tier.HBM, False, 1e6),)),))
    hw = SocketHw(tier_bw={t: 1e12 for t in Tier}, tier_latency={t: 0.0 for t in Tier}, agcu_bw=1e12,
                  pmu_bw=1e12, p2p=Fabric(1e11, 0.0), d2d=Link(1e12, 0.0), pcu_count=1, pmu_count=1,
                  hbm_peak_bw=1e12, collectives=CollectiveSpec(0.0))
    fast = pipeline.simulate_kernel(k, hw, 8)
    assert not calls
    with evaluation.reference():
        assert pipeline.simulate_kernel(k, hw, 8) == fast
    assert len(calls) == 1
    log: list = []
    assert pipeline.simulate_kernel(k, hw, 8, log) == fast and log and len(calls) == 2



def test_a_negative_time_is_refused_by_both():
    k = Kernel("k", ("a",), (Stage(StageKind.COMPUTE, 1.0, 1e-3, 1, 1, 1, 0.0,
                                   streams=(Stream(Tier.HBM, False, -1e6),)),))
    hw = SocketHw(tier_bw={t: 1e12 for t in Tier}, tier_latency={t: 0.0 for t in Tier}, agcu_bw=1e12,
                  pmu_bw=1e12, p2p=Fabric(1e11, 0.0), d2d=Link(1e12, 0.0), pcu_count=1, pmu_count=1,
                  hbm_peak_bw=1e12, collectives=CollectiveSpec(0.0))
    for simulate in (simulate_kernel_fast, simulate_kernel_events):
        with pytest.raises(ValueError, match="[Nn]egative delay"):
            simulate(k, hw, 4)


RUN = r"""
import sys
from rdusim.cli import main
from rdusim.engine import evaluation
if sys.argv[1] == "reference":
    with evaluation.reference():
        rc = main(["run", "workloads/fusion_suite.yaml", "--out", sys.argv[2]])
else:
    rc = main(["run", "workloads/fusion_suite.yaml", "--out", sys.argv[2]])
sys.exit(rc)
"""


def _close(a, b, path=""):
    if isinstance(a, float) or isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0) or a == b, path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


@pytest.mark.slow
def test_fusion_suite_run_is_the_same_with_the_reference_pipeline(tmp_path):
    """``rdusim run workloads/fusion_suite.yaml``: every metric within 1e-9 relative with the
    fast pipeline and with the SimPy reference (each in a fresh process)."""
    out = {}
    for mode in ("fast", "reference"):
        proc = subprocess.run([sys.executable, "-c", RUN, mode, str(tmp_path / mode)], capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        out[mode] = json.loads((tmp_path / mode / "results.json").read_text())
    assert out["fast"]["metrics"] and out["fast"]["metrics"].keys() == out["reference"]["metrics"].keys()
    _close(out["fast"]["metrics"], out["reference"]["metrics"], "metrics")
