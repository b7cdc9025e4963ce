"""The RDU compiler: unfused vs fused partitions, views and transposes, placement limits,
memory tiers, kernel signatures. A tiny hand-built graph plus a 2-layer Llama-2-7B."""

from __future__ import annotations

import dataclasses

import pytest

from rdusim.compiler import compile
from rdusim.compiler.plan import StageKind
from rdusim.config.arch import load_arch
from rdusim.config.model import load_model
from rdusim.config.policy import FusionPolicy
from rdusim.graph import ops as O
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.opgraph import OpGraph
from rdusim.graph.phase import Phase
from rdusim.graph.tensor import Tensor, TensorRole

ARCH = load_arch("arch/sn40l.yaml")
U, F = FusionPolicy.UNFUSED, FusionPolicy.FUSED


def tiny() -> OpGraph:
    """x -> linear -> reshape -> transpose -> gelu -> linear: 5 ops, one view, one transpose."""
    x = Tensor("x", (256, 512), role=TensorRole.INPUT)
    w1 = Tensor("w1", (512, 1024), role=TensorRole.WEIGHT)
    w2 = Tensor("w2", (1024, 512), role=TensorRole.WEIGHT)
    a = O.linear("fc1", x, w1, "h")
    r = O.reshape("split", a.outputs[0], (256, 8, 128), "h3")
    t = O.transpose("swap", r.outputs[0], (1, 0, 2), "ht")
    r2 = O.reshape("flat", t.outputs[0], (256, 1024), "hf")
    g = O.elementwise("act", [r2.outputs[0]], "g", flops_per_element=8)
    b = O.linear("fc2", g.outputs[0], w2, "y")
    return OpGraph("tiny", [a, r, t, r2, g, b])


def llama(phase: Phase, seq: int = 1024, layers: int = 2):
    return build_model_graph(load_model("llama2-7b"), phase, 1, seq, tp=8, layers=layers)


def with_socket(**changes):
    sock = ARCH.socket
    parts = {}
    for key, value in changes.items():
        unit, field = key.split("__")
        parts[unit] = dataclasses.replace(parts.get(unit, getattr(sock, unit)), **{field: value})
    return dataclasses.replace(ARCH, socket=dataclasses.replace(sock, **parts))


def test_unfused_every_real_op_is_a_kernel_and_views_are_free():
    plan = compile(tiny(), ARCH, U)
    assert [k.ops for k in plan.kernels] == [("fc1",), ("swap",), ("act",), ("fc2",)]
    swap = plan.kernels[1]
    assert swap.stages[0].kind == StageKind.MOVE            # the transpose is a pass over memory
    h = 256 * 1024 * 2
    assert swap.bytes_by_tier()["hbm"] == pytest.approx(2 * h)
    # every intermediate goes out to HBM and comes back
    inter = 3 * 2 * h
    ext = (256 * 512 + 512 * 1024 + 1024 * 512 + 256 * 512) * 2
    assert plan.bytes_by_tier()["hbm"] == pytest.approx(inter + ext)


def test_fused_transpose_is_an_access_pattern_and_the_graph_one_kernel():
    plan = compile(tiny(), ARCH, F)
    assert len(plan.kernels) == 1
    k = plan.kernels[0]
    assert k.ops == ("fc1", "act", "fc2") and len(k.stages) == 3
    ext = (256 * 512 + 512 * 1024 + 1024 * 512 + 256 * 512) * 2
    assert plan.bytes_by_tier()["hbm"] == pytest.approx(ext)
    assert plan.flops == pytest.approx(compile(tiny(), ARCH, U).flops)


def test_placement_stays_within_the_socket():
    for phase in (Phase.PREFILL, Phase.DECODE):
        for policy in (U, F):
            for k in compile(llama(phase), ARCH, policy).kernels:
                assert k.pcus <= ARCH.socket.pcu.count
                assert k.pmus <= ARCH.socket.pmu.count
                assert k.agcus <= ARCH.socket.agcu.count + 1e-9
                assert all(s.pcus >= 1 for s in k.stages if s.kind == StageKind.COMPUTE)


def test_pcus_follow_the_work():
    k = compile(llama(Phase.PREFILL), ARCH, F).kernels[1]
    gemms = [s for s in k.stages if s.kind == StageKind.COMPUTE and s.pcus > 10]
    # a balanced pipeline: the big stages take about the same time
    times = [s.compute_s for s in gemms]
    assert max(times) / min(times) < 1.3


def test_decode_layer_is_one_kernel_with_repeated_signature():
    plan = compile(llama(Phase.DECODE, layers=4), ARCH, F)
    layer_kernels = [k for k in plan.kernels if k.layer >= 0]
    assert [k.layer for k in layer_kernels] == [0, 1, 2, 3]
    assert len({k.signature for k in layer_kernels}) == 1
    assert any(s.kind == StageKind.COLLECTIVE for s in layer_kernels[0].stages)   # all-reduces stream inside
    ops_in_layer = [o for o in llama(Phase.DECODE, layers=4).ops if o.layer == 1 and not o.kind.is_layout]
    assert len(layer_kernels[1].ops) == len(ops_in_layer)


def test_unfused_collectives_are_their_own_kernels():
    plan = compile(llama(Phase.DECODE), ARCH, U)
    coll = [k for k in plan.kernels if k.is_collective_only]
    assert len(coll) >= 4                     # two all-reduces per layer
    assert len(plan.kernels) > 10 * len(compile(llama(Phase.DECODE), ARCH, F).kernels) / 3


def test_fusion_removes_intermediate_traffic():
    for phase in (Phase.PREFILL, Phase.DECODE):
        g = llama(phase)
        fused, unfused = compile(g, ARCH, F), compile(g, ARCH, U)
        assert fused.bytes_by_tier()["hbm"] < unfused.bytes_by_tier()["hbm"]
    g = llama(Phase.PREFILL)
    assert compile(g, ARCH, U).bytes_by_tier()["hbm"] > 2.5 * compile(g, ARCH, F).bytes_by_tier()["hbm"]


def test_small_sram_splits_kernels_or_restreams():
    g = llama(Phase.PREFILL, seq=2048)
    small = with_socket(pmu__capacity_bytes=16 * 1024)
    big = compile(g, ARCH, F)
    cut = compile(g, small, F)
    assert len(cut.kernels) > len(big.kernels)
    assert cut.bytes_by_tier()["hbm"] > big.bytes_by_tier()["hbm"]


def test_tensors_spill_to_ddr_when_hbm_is_too_small():
    g = llama(Phase.DECODE)
    tiny_hbm = dataclasses.replace(ARCH, socket=dataclasses.replace(
        ARCH.socket, hbm=dataclasses.replace(ARCH.socket.hbm, capacity_bytes=1e6, reserved_bytes=0)))
    plan = compile(g, tiny_hbm, F)
    assert plan.bytes_by_tier().get("ddr", 0) > 0
    assert "ddr" in set(plan.placement.values())
    assert "ddr" not in set(compile(g, ARCH, F).placement.values())


def test_plan_is_immutable_and_tiles_checked():
    plan = compile(tiny(), ARCH, F)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.kernels[0].stages[0].pcus = 3
    with pytest.raises(ValueError):
        compile(tiny(), ARCH, F, tiles=0)


def test_big_kernel_spans_both_dies():
    k = compile(llama(Phase.PREFILL), ARCH, F).kernels[1]
    assert {s.die for s in k.stages} == {0, 1}
    assert k.d2d_bytes > 0
    assert all(s.die == 0 for s in compile(tiny(), ARCH, U).kernels[2].stages)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(pcus=st.integers(4, 2048), pmus=st.integers(8, 2048), kib=st.integers(16, 2048),
       agcus=st.integers(1, 64), policy=st.sampled_from([U, F]))
def test_allocations_never_exceed_the_socket(pcus, pmus, kib, agcus, policy):
    arch = with_socket(pcu__count=pcus, pmu__count=pmus, pmu__capacity_bytes=kib * 1024.0, agcu__count=agcus)
    plan = compile(tiny(), arch, policy)
    for k in plan.kernels:
        assert k.pcus <= pcus and k.pmus <= pmus and k.agcus <= agcus + 1e-9
    # the same work whatever the machine
    assert plan.flops == pytest.approx(compile(tiny(), ARCH, policy).flops)
