"""Tensor parallelism across nodes: the hierarchical collective by hand, both engines' records,
the per-device memory at the real TP degree, the shipped example and its error paths."""

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdusim.cache import RunCache
from rdusim.config.arch_common import ArchKind, Link, NetworkTopology, NodeSpan
from rdusim.config.cluster import load_cluster
from rdusim.config.deployment import Deployment
from rdusim.config.model import load_model
from rdusim.engine.collectives import CollectiveOp, collective_cost
from rdusim.engine.collectives_cluster import SpanningCost, inter_node_cost
from rdusim.engine.pipeline_parallel import simulate_pipelined
from rdusim.engine.stepper import StepModel
from rdusim.graph.phase import Phase
from rdusim.memory import device_memory

CACHE = RunCache()
AR, AG = CollectiveOp.ALLREDUCE, CollectiveOp.ALLGATHER


def _fabric(arch):
    return arch.links.p2p if arch.kind == ArchKind.RDU else arch.links.nvlink


def _with_span(arch, nodes, bw=5e10, lat=5e-6, eff=0.9, topo=NetworkTopology.RAIL_OPTIMIZED):
    span = NodeSpan(8, nodes, Link(bw, lat, eff), topo)
    return dataclasses.replace(arch, collectives=dataclasses.replace(arch.collectives, span=span))


@pytest.mark.parametrize("path", ["clusters/sn40l_x2.yaml", "clusters/dgx_h100_x2.yaml"])
@pytest.mark.parametrize("message", [16384.0, 1 << 20, 134217728.0])
def test_two_nodes_cost_one_node_plus_exactly_the_inter_node_term(path, message):
    c = load_cluster(path)
    arch = c.spanning_arch()
    one = collective_cost(AR, 8, message, _fabric(arch), arch.collectives)
    two = collective_cost(AR, 16, message, _fabric(arch), arch.collectives)
    assert isinstance(two, SpanningCost) and not isinstance(one, SpanningCost)
    # ring over the 2 nodes' NICs on each device's 1/8 shard, by hand
    nic = c.network.bandwidth_bytes_per_s * c.network.efficiency
    inter = 2 * (2 - 1) / 2 * (message / 8) / nic + 2 * (2 - 1) * c.network.latency_s
    assert two.inter_s == pytest.approx(inter, rel=1e-12)
    assert two.intra_s == pytest.approx(one.time_s, rel=1e-12)
    assert two.time_s == pytest.approx(one.time_s + inter, rel=1e-12)
    # the one-node collective on the cluster's machine is untouched by the span
    plain = collective_cost(AR, 8, message, _fabric(c.node), c.node.collectives)
    assert one == plain


@pytest.mark.parametrize("nodes", [2, 3, 4, 8])
def test_ring_inter_node_term_for_n_nodes_by_hand(nodes):
    span = NodeSpan(8, 8, Link(2.5e10, 4e-6, 0.8))
    m = 3.0e6
    got = inter_node_cost(AR, span, 8 * nodes, m)
    want = 2 * (nodes - 1) / nodes * (m / 8) / (2.5e10 * 0.8) + 2 * (nodes - 1) * 4e-6
    assert got.time_s == pytest.approx(want, rel=1e-12)
    assert got.steps == 2 * (nodes - 1)
    # all-gather: half the steps and bytes of the all-reduce's ring
    ag = inter_node_cost(AG, span, 8 * nodes, m)
    assert ag.time_s == pytest.approx((nodes - 1) / nodes * (m / 8) / (2.5e10 * 0.8) + (nodes - 1) * 4e-6)


def test_shared_uplink_queues_the_nodes_shards():
    rail = NodeSpan(8, 2, Link(5e10, 0.0, 1.0), NetworkTopology.RAIL_OPTIMIZED)
    shared = dataclasses.replace(rail, topology=NetworkTopology.SHARED)
    m = 8.0e6
    assert inter_node_cost(AR, rail, 16, m).time_s == pytest.approx(m / 8 / 5e10)
    # eight devices' shards on one uplink: the whole message crosses it
    assert inter_node_cost(AR, shared, 16, m).time_s == pytest.approx(m / 5e10)


def test_a_group_spanning_nodes_fills_whole_nodes():
    span = NodeSpan(8, 2, Link(5e10))
    with pytest.raises(ValueError, match="multiple of 8"):
        inter_node_cost(AR, span, 12, 1e6)
    with pytest.raises(ValueError, match="cluster has 2"):
        inter_node_cost(AR, span, 24, 1e6)


@settings(max_examples=60, deadline=None)
@given(message=st.floats(1.0, 1e9), nodes=st.integers(2, 8), lat=st.floats(0.0, 1e-4),
       bw=st.floats(1e9, 1e11))
def test_more_nodes_never_cheaper_and_always_above_one_node(message, nodes, lat, bw):
    c = load_cluster("clusters/dgx_h100_x2.yaml")
    arch = _with_span(c.node, 8, bw=bw, lat=lat)
    f, spec = _fabric(arch), arch.collectives
    one = collective_cost(AR, 8, message, f, spec).time_s
    n = collective_cost(AR, 8 * nodes, message, f, spec)
    more = collective_cost(AR, 8 * (nodes + 1) if nodes < 8 else 64, message, f, spec)
    assert n.time_s >= one and more.time_s >= n.time_s * (1 - 1e-12)
    assert n.time_s == pytest.approx(n.intra_s + n.inter_s, rel=1e-9)


@pytest.mark.parametrize("path", ["clusters/sn40l_x2.yaml", "clusters/dgx_h100_x2.yaml"])
def test_engines_charge_each_spanning_all_reduce_its_inter_node_phase(path):
    """A TP16 decode step on two nodes: every all-reduce record carries the hand-computed
    inter-node term of its message, and the step's records sum to (all-reduces x term)."""
    c = load_cluster(path)
    cfg = load_model("llama2-7b")
    batch, seq = 2, 256
    dep = Deployment.of(c.spanning_arch(), cfg, 16)
    step = StepModel(dep, CACHE).engine_step(Phase.DECODE, batch, seq)
    message = batch * cfg.hidden_size * 2                      # bf16 hidden state of the batch
    term = inter_node_cost(AR, c.span, 16, message).time_s
    recs = [r for r in step.records if r.get("inter_node_s")]
    gather = [r["inter_node_s"] for r in recs if "allgather" in r["name"]]
    # the LM head's logits all-gather: a ring over the NICs on the 1/8 shard, N-1 steps
    assert gather == [pytest.approx(inter_node_cost(AG, c.span, 16, batch * cfg.vocab_size * 2).time_s, rel=1e-9)]
    inter = [r["inter_node_s"] for r in recs if "allgather" not in r["name"]]
    # each record: a whole number of all-reduces of the hidden state (a fused RDU layer holds
    # two), two per decoder layer (attention out, MLP down) at least
    counts = [x / term for x in inter]
    assert all(k == pytest.approx(round(k), rel=1e-9) and round(k) >= 1 for k in counts)
    assert round(sum(counts)) >= 2 * cfg.num_hidden_layers
    assert step.breakdown_s["collective"] >= 0.999 * (sum(inter) + gather[0])


def test_memory_per_device_uses_the_real_tp_degree():
    c = load_cluster("clusters/dgx_h100_x2.yaml")
    cfg = load_model("llama3-70b")
    at8 = device_memory(Deployment.of(c.node, cfg, 8, stack="tensorrt_llm"), 8, 1152, 1024)
    at16 = device_memory(Deployment.of(c.node, cfg, 16, stack="tensorrt_llm"), 8, 1152, 1024)
    assert at16.weights_bytes < 0.52 * at8.weights_bytes
    dep = Deployment.of(c.spanning_arch(), cfg, 16, stack="tensorrt_llm")
    r = simulate_pipelined(c, dep, 1, 1, 1024, 4, 8, CACHE)
    assert r.oom is None and r.memory.weights_bytes == at16.weights_bytes and r.nodes_per_stage == 2
    assert r.transfer_prefill_s == 0.0 and r.allreduce_inter_s > 0


TP16 = "workloads/llama3_70b_tp16_two_nodes.yaml"
SMALL = ["--set", "model=llama2-7b", "--set", "prompt_tokens=128", "--set", "output_tokens=4", "--set", "batch_size=2"]


def test_tp16_example_end_to_end(run_workload):
    printed, m = run_workload(TP16, SMALL)
    assert "tp16 (2)" in printed
    for c in ("sn40l_x2", "dgx_h100_x2"):
        p = f"model.{c}.pp"
        assert m[f"{p}.oom"] == 0 and m[f"{p}.tp"] == 16 and m[f"{p}.nodes_per_stage"] == 2
        assert m[f"{p}.prefill_bubble"] == 0.0 and m[f"{p}.transfer_decode_s"] == 0.0
        assert m[f"{p}.allreduce_inter_s"] == pytest.approx(2 * 5e-6 + (2 * 4096 * 2 / 8) / (
            {"sn40l_x2": 2.5e10, "dgx_h100_x2": 5e10}[c] * 0.9), rel=1e-9)
        assert m[f"{p}.decode_network_s"] >= 64 * m[f"{p}.allreduce_inter_s"] * 0.999
        # weights per device at TP16: half of the single-node TP8 platform's
        single = "sn40l" if c.startswith("sn40l") else "dgx_h100"
        assert m[f"{p}.memory.weights_bytes"] < 0.52 * m[f"model.{single}.memory.weights_bytes"]


@pytest.mark.parametrize("sets, key, says", [
    (["clusters.sn40l_x2.tp=12"], "clusters.sn40l_x2.tp", "multiple of 8"),
    (["clusters.sn40l_x2.stages=2"], "clusters.sn40l_x2.tp", "x stages (2)"),
    (["model=llama2-13b"], "clusters.sn40l_x2.tp", "divisor of llama2-13b's heads"),
    (["platforms.sn40l.tp=16"], "platforms.sn40l.tp", "cluster platform"),
    (["clusters.sn40l_x2.tp_across_nodes=2"], "clusters.sn40l_x2.tp_across_nodes", "unknown key"),
    (["clusters.dgx_h100_x2.tp=sixteen"], "clusters.dgx_h100_x2.tp", "sixteen"),
])
def test_bad_tp_splits_exit_2(tmp_path, capsys, sets, key, says):
    from rdusim.cli import main

    args = ["run", TP16, "--out", str(tmp_path / "o")] + SMALL
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert key in err and says in err and TP16 in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_tp_across_nodes_with_pipeline_stages():
    """Four nodes: two stages, each TP16 over two nodes; stage-to-stage sends and the bubble
    stay the pipeline's, the all-reduces cross the network inside each stage."""
    c = dataclasses.replace(load_cluster("clusters/sn40l_x2.yaml"), nodes=4)
    dep = Deployment.of(c.spanning_arch(), load_model("llama2-7b"), 16)
    r = simulate_pipelined(c, dep, 2, 2, 128, 4, 4, CACHE)
    assert r.oom is None and r.nodes_per_stage == 2 and r.transfer_prefill_s > 0
    assert r.prefill.bubble == pytest.approx(1 - 2 * 2 * r.stage_prefill_s / (2 * (3 * r.stage_prefill_s
                                                                                  + r.transfer_prefill_s)))
    assert r.allreduce_inter_s > 0 and r.decode_network_s > 0
    with pytest.raises(ValueError, match="x stages"):
        simulate_pipelined(c, dep, 3, 1, 128, 4, 4, CACHE)
