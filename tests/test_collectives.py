"""Collectives as algorithms over a fabric (rdusim.engine.collectives): hand-computed cases,
availability by topology, the tuner's choice, per-machine parameters."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdusim.config.arch import load_arch
from rdusim.config.arch_common import CollectiveAlgorithm as Alg, CollectiveSpec, Fabric, Topology
from rdusim.engine.collectives import CollectiveOp, algorithm_cost, collective_cost
from rdusim.errors import InputError

AR, AG = CollectiveOp.ALLREDUCE, CollectiveOp.ALLGATHER


def test_ring_allreduce_steps_and_time_by_hand():
    # 4 ranks, 4000 bytes, 1 GB/s, 1 us a hop, 5 us per collective:
    # 2(n-1) = 6 steps, each 1 us + 1000 bytes / 1 GB/s = 1 us; plus 5 us -> 17 us
    fabric = Fabric(1e9, 1e-6, topology=Topology.RING, ports=2)
    c = collective_cost(AR, 4, 4000, fabric, CollectiveSpec(5e-6))
    assert (c.algorithm, c.steps, c.wire_bytes) == (Alg.RING, 6, 6000)
    assert c.time_s == pytest.approx(17e-6, rel=1e-12)


def test_ring_allgather_steps_and_time_by_hand():
    # n-1 = 3 steps of 1/4 of the message: 5 + 3 x (1 + 1) = 11 us
    c = collective_cost(AG, 4, 4000, Fabric(1e9, 1e-6, topology=Topology.RING), CollectiveSpec(5e-6))
    assert (c.algorithm, c.steps) == (Alg.RING, 3)
    assert c.time_s == pytest.approx(11e-6, rel=1e-12)


def test_switch_algorithms_by_hand():
    fabric = Fabric(1e9, 1e-6, efficiency=0.5, topology=Topology.SWITCH, ports=8, in_network_reduction=True)
    spec = CollectiveSpec(0.0)
    bw = 0.5e9
    # tree: 2 ceil(log2 8) = 6 steps, 2 M bytes; one-shot: 1 step, 7 M; switch_reduce: 2 steps, M
    assert algorithm_cost(Alg.TREE, AR, 8, 1000, fabric, spec).time_s == pytest.approx(6e-6 + 2000 / bw)
    assert algorithm_cost(Alg.ONE_SHOT, AR, 8, 1000, fabric, spec).time_s == pytest.approx(1e-6 + 7000 / bw)
    assert algorithm_cost(Alg.SWITCH_REDUCE, AR, 8, 1000, fabric, spec).time_s == pytest.approx(2e-6 + 1000 / bw)


def test_full_mesh_algorithms_get_only_the_ports_they_drive():
    # 8 ranks, 7 ports of 1/7 of 7 GB/s: one-shot drives all 7, ring 6 (3 Hamiltonian cycles
    # both ways), the double binary tree 4
    fabric = Fabric(7e9, 0.0, topology=Topology.FULL_MESH, ports=7)
    spec = CollectiveSpec(0.0)
    assert algorithm_cost(Alg.ONE_SHOT, AR, 8, 8e3, fabric, spec).time_s == pytest.approx(7 * 8e3 / 7e9)
    assert algorithm_cost(Alg.RING, AR, 8, 8e3, fabric, spec).time_s == pytest.approx(14 / 8 * 8e3 / 6e9)
    assert algorithm_cost(Alg.TREE, AR, 8, 8e3, fabric, spec).time_s == pytest.approx(2 * 8e3 / 4e9)


def test_ring_topology_runs_only_rings():
    fabric = Fabric(1e9, 1e-6, topology=Topology.RING, ports=2)
    assert fabric.algorithms(reduce=True) == (Alg.RING,)
    with pytest.raises(ValueError, match="cannot run on a ring fabric"):
        algorithm_cost(Alg.ONE_SHOT, AR, 8, 1e3, fabric, CollectiveSpec(0.0))
    # a fixed tree has no all-gather form: all-gathers run as rings
    mesh = Fabric(1e9, 1e-6, topology=Topology.FULL_MESH, ports=7)
    assert collective_cost(AG, 8, 1e3, mesh, CollectiveSpec(0.0, Alg.TREE)).algorithm == Alg.RING


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 8), st.floats(1.0, 1e9), st.sampled_from(list(Topology)), st.booleans())
def test_auto_is_the_fastest_available(ranks, nbytes, topology, reduce_in_switch):
    fabric = Fabric(1e11, 2e-6, topology=topology, ports=2 if topology == Topology.RING else 8,
                    in_network_reduction=reduce_in_switch and topology == Topology.SWITCH)
    spec = CollectiveSpec(3e-6)
    for op in (AR, AG):
        best = collective_cost(op, ranks, nbytes, fabric, spec)
        for alg in fabric.algorithms(reduce=op == AR):
            assert best.time_s <= algorithm_cost(alg, op, ranks, nbytes, fabric, spec).time_s
        assert best.time_s >= spec.base_latency_s + fabric.latency_s


def test_h100_and_a100_have_their_own_collective_parameters():
    h100, a100 = load_arch("arch/dgx_h100.yaml"), load_arch("arch/dgx_a100.yaml")
    assert h100.collectives.base_latency_s != a100.collectives.base_latency_s
    assert h100.links.nvlink.efficiency != a100.links.nvlink.efficiency
    assert h100.links.nvlink.in_network_reduction and not a100.links.nvlink.in_network_reduction
    assert "nccl.h100" in h100.sources["collectives.switch_reduce_latency_s"]   # NVLS: from the H100's NCCL points
    assert "nccl.a100" in a100.sources["collectives.base_latency_s"]
    assert not h100.collectives.one_shot and not a100.collectives.one_shot      # NCCL: ring, tree, NVLS only
    assert "nccl.a100" in a100.sources["collectives.base_latency_s"]
    t = {a.name: collective_cost(AR, 8, 8 * 2**20, a.links.nvlink, a.collectives) for a in (h100, a100)}
    assert t["dgx_h100"].algorithm == Alg.SWITCH_REDUCE and t["dgx_a100"].algorithm != Alg.SWITCH_REDUCE
    # the fits reproduce each machine's own measured 8 MB point (vidur: 51 us H100, 99 us A100)
    assert t["dgx_h100"].time_s == pytest.approx(51e-6, rel=0.01)
    assert t["dgx_a100"].time_s == pytest.approx(99e-6, rel=0.01)


def test_sn40l_collective_comes_from_topology_and_algorithm():
    mesh = load_arch("arch/sn40l.yaml")
    ring = load_arch("arch/sn40l.yaml", [("links.p2p.topology", "ring"), ("links.p2p.ports", 2)])
    small = 8192     # a Llama-2-7B decode all-reduce at batch 1
    a = collective_cost(AR, 8, small, mesh.links.p2p, mesh.collectives)
    b = collective_cost(AR, 8, small, ring.links.p2p, ring.collectives)
    assert (a.algorithm, a.steps) == (Alg.ONE_SHOT, 1)
    assert (b.algorithm, b.steps) == (Alg.RING, 14)
    lat, base = mesh.links.p2p.latency_s, mesh.collectives.base_latency_s
    assert b.time_s == pytest.approx(base + 14 * lat + 14 / 8 * small / mesh.links.p2p.bandwidth_bytes_per_s)


def test_bad_fabric_is_an_input_error():
    with pytest.raises(InputError) as err:
        load_arch("arch/sn40l.yaml", [("links.p2p.ports", 3)])
    assert err.value.key == "links.p2p.ports" and "full mesh of 8" in err.value.expected
    with pytest.raises(InputError) as err:
        load_arch("arch/dgx_a100.yaml", [("collectives.algorithm", "switch_reduce")])
    assert err.value.key == "collectives.algorithm"
    with pytest.raises(InputError) as err:
        load_arch("arch/sn40l.yaml", [("links.p2p.in_network_reduction", True)])
    assert err.value.key == "links.p2p.in_network_reduction"


def test_both_engines_record_the_algorithm_of_their_collectives():
    from rdusim.config.model import load_model
    from rdusim.config.policy import FusionPolicy, LaunchMode
    from rdusim.engine.gpu.step import simulate_step as gpu_step
    from rdusim.engine.rdu.step import simulate_step as rdu_step
    from rdusim.graph.model_graph import build_model_graph
    from rdusim.graph.phase import Phase

    g = build_model_graph(load_model("llama2-7b"), Phase.DECODE, 1, 128, tp=8, layers=2)
    sn = load_arch("arch/sn40l.yaml")
    ring = load_arch("arch/sn40l.yaml", [("links.p2p.topology", "ring"), ("links.p2p.ports", 2)])
    mesh_rows = rdu_step(sn, g, fusion=FusionPolicy.FUSED, launch=LaunchMode.HARDWARE, tp=8).records
    ring_step = rdu_step(ring, g, fusion=FusionPolicy.FUSED, launch=LaunchMode.HARDWARE, tp=8)
    assert {r["algorithm"] for r in mesh_rows} >= {"one_shot"}
    assert {r["algorithm"] for r in ring_step.records} >= {"ring"}
    # the ring's 14 hops of 2 us per all-reduce make the decode step slower than one-shot's one hop
    mesh_step = rdu_step(sn, g, fusion=FusionPolicy.FUSED, launch=LaunchMode.HARDWARE, tp=8)
    assert ring_step.time_s > mesh_step.time_s
    h100 = gpu_step(load_arch("arch/dgx_h100.yaml"), g, fusion=FusionPolicy.FUSED, launch=LaunchMode.CUDA_GRAPH, tp=8)
    coll = [r for r in h100.records if r["kind"] == "collective"]
    reduce = [r for r in coll if r["bytes"] < 20000]            # the decode all-reduces (8 KB of hidden state)
    assert reduce and {r["algorithm"] for r in reduce} == {"tree"} and {r["steps"] for r in reduce} == {6}
