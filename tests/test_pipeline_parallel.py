"""Clusters and pipeline parallelism across nodes: the bubble by hand, transfers, memory, errors."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdusim.config.cluster import Topology, load_cluster
from rdusim.config.deployment import Deployment
from rdusim.config.model import load_model
from rdusim.engine.pipeline_parallel import schedule, simulate_pipelined, stage_deployment
from rdusim.cache import RunCache
from rdusim.engine.stepper import StepModel
from rdusim.errors import InputError

CACHE = RunCache()


@settings(max_examples=80, deadline=None)
@given(stages=st.integers(1, 8), micro=st.integers(1, 16), t=st.floats(1e-4, 1.0))
def test_bubble_is_stages_minus_one_over_microbatches_plus_stages_minus_one(stages, micro, t):
    s = schedule([[t] * stages], 0.0, micro)
    assert s.makespan_s == pytest.approx((micro + stages - 1) * t)
    assert s.bubble == pytest.approx((stages - 1) / (micro + stages - 1))


def test_transfers_and_decode_iterations_by_hand():
    # 2 stages, 1 micro-batch: every hop waits for the send
    assert schedule([[1.0, 1.0]], 0.5, 1).makespan_s == 2.5
    # decode: an iteration starts when the previous token left the last stage
    assert schedule([[1.0, 1.0]] * 3, 0.0, 1).makespan_s == 6.0
    # with micro-batches >= stages the pipeline stays full after the first fill
    s = schedule([[1.0, 1.0]] * 10, 0.0, 2)
    assert s.makespan_s == 21.0 and s.bubble == pytest.approx(1 - 40 / 42)
    # the slowest stage sets the pace
    assert schedule([[1.0, 3.0]], 0.0, 4).makespan_s == 1.0 + 4 * 3.0


def test_cluster_files_and_the_network_send():
    c = load_cluster("clusters/dgx_h100_x2.yaml")
    assert c.nodes == 2 and c.devices_per_node == 8 and c.topology == Topology.RAIL_OPTIMIZED
    assert "ConnectX-7" in c.sources["network.bandwidth_bytes_per_s"]
    assert c.send_s(8e6, 8) == pytest.approx(5e-6 + 8e6 / (8 * 50e9 * 0.9))     # every GPU its own NIC
    shared = load_cluster("clusters/dgx_h100_x2.yaml", [("topology", "shared")])
    assert shared.send_s(8e6, 8) == pytest.approx(5e-6 + 8e6 / (50e9 * 0.9))
    assert load_cluster("clusters/sn40l_x2.yaml").node.name == "sn40l"


@pytest.mark.parametrize("over, key", [
    ([("network.bandwidth_bytes_per_s", {"value": 1e9})], "network.bandwidth_bytes_per_s"),   # no source
    ([("nodes", {"value": 0, "source": "x"})], "nodes"),
    ([("topology", "torus")], "topology"),
    ([("node", "arch/nope.yaml")], "node"),
])
def test_bad_cluster_input(over, key):
    with pytest.raises(InputError) as e:
        load_cluster("clusters/dgx_h100_x2.yaml", over)
    assert e.value.key.startswith(key)


@pytest.mark.parametrize("cluster", ["clusters/dgx_h100_x2.yaml", "clusters/sn40l_x2.yaml"])
def test_two_node_pipeline_of_llama2_70b(cluster):
    c = load_cluster(cluster)
    dep = Deployment.of(c.node, load_model("llama2-70b"), 8)
    r = simulate_pipelined(c, dep, 2, 2, 512, 9, 4, CACHE)
    stage = StepModel(stage_deployment(dep, 2), CACHE)
    assert stage.dep.model.num_hidden_layers == 40
    t_pre = stage.prefill(2, 512).time_s
    act = 8192 * 2
    x = c.send_s(2 * 512 * act, 8)
    assert r.stage_prefill_s == t_pre and r.transfer_prefill_s == x
    assert r.ttft_s == pytest.approx(dep.stack.host.per_request_s + 3 * t_pre + x)   # (M + S - 1) stages, one send
    assert r.prefill.bubble == pytest.approx(1 - 2 * t_pre / (3 * t_pre + x))
    assert r.decode.makespan_s > 8 * 2 * r.stage_decode_s                          # 8 iterations x 2 micro-batches
    whole = StepModel(dep, CACHE).prefill(2, 512).time_s
    assert t_pre < 0.55 * whole                                                    # half the layers per stage
    from rdusim.engine.inference import weight_bytes_per_rank
    assert r.oom is None and r.memory.weights_bytes == pytest.approx(weight_bytes_per_rank(stage.dep.model, 8))
    assert r.memory.weights_bytes < 0.55 * weight_bytes_per_rank(dep.model, 8)     # half the layers, plus the head
    assert r.memory.kv_bytes == pytest.approx(4 * dep.model.kv_cache_bytes_per_rank(521, 8) / 2)


def test_a_stage_that_does_not_fit_is_an_oom_result_and_bad_splits_raise():
    c = load_cluster("clusters/dgx_h100_x2.yaml")
    dep = Deployment.of(c.node, load_model("llama2-70b"), 1)
    r = simulate_pipelined(c, dep, 1, 1, 128, 2, 1, CACHE)
    assert r.oom and "83.90 GB usable" in r.oom
    assert simulate_pipelined(c, dep, 2, 1, 128, 2, 1, CACHE).oom is None                   # 35 GB per GPU
    for stages, micro, batch in ((3, 1, 1), (4, 1, 1), (2, 3, 4)):
        with pytest.raises(ValueError):
            simulate_pipelined(c, dep, stages, micro, 128, 2, batch, CACHE)


TWO = "workloads/llama3_70b_two_nodes.yaml"
SMALL = ["--set", "model=llama2-7b", "--set", "prompt_tokens=128", "--set", "output_tokens=4", "--set", "batch_size=2",
         "--set", "platforms={sn40l: {arch: arch/sn40l.yaml, tp: 8}}"]


def test_two_node_workload_end_to_end(run_workload):
    printed, m = run_workload(TWO, SMALL)
    assert "Over nodes: stages x micro-batches" in printed
    for c in ("sn40l_x2", "dgx_h100_x2"):
        p = f"model.{c}.pp"
        assert m[f"{p}.oom"] == 0 and m[f"{p}.stages"] == 2 and m[f"{p}.microbatches"] == 2
        assert m[f"{p}.prefill_bubble"] == pytest.approx(
            1 - 2 * m[f"{p}.stage_prefill_s"] / (3 * m[f"{p}.stage_prefill_s"] + m[f"{p}.transfer_prefill_s"]))
        assert m[f"{p}.tokens_per_s"] == pytest.approx(2 * 4 / m[f"{p}.latency_s"])


@pytest.mark.parametrize("sets, key", [
    (["clusters.sn40l_x2.stages=3"], "clusters.sn40l_x2.stages"),
    (["clusters.sn40l_x2.microbatches=3"], "clusters.sn40l_x2.microbatches"),
    (["clusters.sn40l_x2.cluster=nope.yaml"], "clusters.sn40l_x2.cluster"),
    (["clusters.sn40l_x2.stack=tensorrt_llm"], "clusters.sn40l_x2.stack"),
    (["clusters.sn40l_x2.tp=16"], "clusters.sn40l_x2.tp"),
    (["clusters.sn40l=1"], "clusters.sn40l"),
])
def test_bad_cluster_platform_exits_2(tmp_path, capsys, sets, key):
    from rdusim.cli import main

    args = ["run", TWO, "--out", str(tmp_path / "o")] + SMALL
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert key in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
