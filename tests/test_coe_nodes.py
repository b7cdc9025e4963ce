"""A CoE spanning nodes: placement, serving over nodes by hand, one node equal to the one-node
model, the shipped example end to end (router traffic in the records, the footprint on a
cluster) and its error paths."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdusim.config.arch import load_arch
from rdusim.config.workload_coe import CachePolicy, ExpertPlacement
from rdusim.engine.coe.placement import TOKEN_ID_BYTES, place, serve_nodes
from rdusim.engine.coe.serving import ServingSetup, serve_sequential
from rdusim.engine.coe.switching import lone_switch_s

ARCH = load_arch("arch/sn40l.yaml")
EXPERT_BYTES = 13.48e9


def _setup(slots, hottest=(), experts=8):
    return ServingSetup(arch=ARCH, devices=8, experts=experts, slots=slots, expert_bytes=EXPERT_BYTES,
                        policy=CachePolicy.LRU, prefetch=False, router_s=lambda b: 1.0 + 0.01 * b,
                        expert_s=lambda n: 0.1 * n, hottest=tuple(hottest))


def test_placement_round_robin_and_by_popularity():
    assert place(7, 3, ExpertPlacement.ROUND_ROBIN, ()).tolist() == [0, 1, 2, 0, 1, 2, 0]
    # hottest first, dealt in turn: 5 and 2 on the router's node 0, 4 on node 1, 0 on node 2 ...
    where = place(6, 3, ExpertPlacement.POPULARITY, (5, 4, 0, 2, 1, 3))
    assert [where[e] for e in (5, 4, 0, 2, 1, 3)] == [0, 1, 2, 0, 1, 2]


@settings(max_examples=40, deadline=None)
@given(experts=st.integers(1, 300), nodes=st.integers(1, 16), seed=st.integers(0, 1000))
def test_placement_balances_experts(experts, nodes, seed):
    hottest = np.random.default_rng(seed).permutation(experts).tolist()
    for how in ExpertPlacement:
        counts = np.bincount(place(experts, nodes, how, hottest), minlength=nodes)
        assert counts.sum() == experts and counts.max() - counts.min() <= 1


def test_two_nodes_by_hand():
    """Batch [0, 1, 1]: expert 0 on node 0, expert 1 on node 1 (round robin), cold caches. Node 1
    gets two prompts' token ids, switches expert 1 in, runs it on 2 prompts and sends 2 answers
    back; node 0 switches expert 0 in and runs it on 1 prompt meanwhile."""
    send = lambda b: 5e-6 + b / 1e9                    # noqa: E731
    copy = lone_switch_s(ARCH, 8, EXPERT_BYTES)
    recs = serve_nodes([_setup(1), _setup(1)], place(2, 2, ExpertPlacement.ROUND_ROBIN, ()),
                       [np.array([0, 1, 1])], send_s=send, prompt_tokens=128, output_tokens=20)
    r = recs[0]
    router = 1.0 + 0.03
    node1 = send(2 * 128 * TOKEN_ID_BYTES) + copy + 0.2 + send(2 * 20 * TOKEN_ID_BYTES)
    node0 = copy + 0.1
    assert node1 > node0 and r.critical_node == 1 and r.nodes_used == 2
    assert r.latency_s == pytest.approx(router + node1, rel=1e-12)
    assert r.router_network_s == pytest.approx(send(1024) + send(160), rel=1e-12)
    assert (r.switch_s, r.expert_s) == (pytest.approx(copy), pytest.approx(0.2))
    assert r.latency_s == pytest.approx(r.router_s + r.router_network_s + r.switch_s + r.expert_s, rel=1e-12)
    assert (r.hits, r.misses, r.bytes_copied, r.network_bytes) == (0, 2, 2 * EXPERT_BYTES, 1024 + 160)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), experts=st.integers(1, 40), slots=st.integers(1, 10),
       batch=st.integers(1, 8))
def test_one_node_is_the_one_node_model(seed, experts, slots, batch):
    rng = np.random.default_rng(seed)
    routes = [rng.integers(0, experts, batch) for _ in range(12)]
    hottest = tuple(range(experts))
    one = serve_sequential(_setup(slots, hottest, experts), routes)
    many = serve_nodes([_setup(slots, hottest, experts)], np.zeros(experts, dtype=np.int64), routes,
                       send_s=lambda b: 1.0, prompt_tokens=128, output_tokens=20)
    for a, b in zip(one, many):
        assert b.latency_s == pytest.approx(a.latency_s, rel=1e-12) and b.router_network_s == 0.0
        assert (a.hits, a.misses, a.bytes_copied) == (b.hits, b.misses, b.bytes_copied)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), experts=st.integers(1, 40), nodes=st.integers(1, 5), slots=st.integers(1, 6),
       batch=st.integers(1, 8), placement=st.sampled_from(list(ExpertPlacement)),
       policy=st.sampled_from(list(CachePolicy)))
def test_closed_form_over_nodes_is_the_sequential_model(seed, experts, nodes, slots, batch, placement, policy):
    from rdusim.engine.coe.placement_closed import nodes_outcome, serve_nodes_closed

    rng = np.random.default_rng(seed)
    routes = [rng.integers(0, experts, batch) for _ in range(15)]
    hottest = tuple(int(e) for e in rng.permutation(experts))
    where = place(experts, nodes, placement, hottest)
    setups = [ServingSetup(**{**_setup(slots, tuple(e for e in hottest if where[e] == j), experts).__dict__,
                              "policy": policy, "expert_s": (lambda n, j=j: 0.1 * n + 0.003 * j)})
              for j in range(nodes)]
    send = lambda b: 5e-6 + b / 1e9                    # noqa: E731
    seq = serve_nodes(setups, where, routes, send_s=send, prompt_tokens=128, output_tokens=20)
    cols = serve_nodes_closed(setups, nodes_outcome(setups, where, routes), send_s=send,
                              prompt_tokens=128, output_tokens=20)
    for i, r in enumerate(seq):
        for f in ("batch", "prompts", "distinct_experts", "hits", "misses", "nodes_used"):
            assert cols[f][i] == getattr(r, f), f
        for f in ("router_s", "latency_s", "bytes_copied", "network_bytes", "start_s"):
            assert cols[f][i] == pytest.approx(getattr(r, f), rel=1e-12, abs=1e-15), f
        # the node that finishes last: the same one, unless two nodes end within float rounding
        # of each other (the latency, asserted equal above, is then both of theirs)
        if cols["critical_node"][i] != r.critical_node:
            continue
        for f in ("router_network_s", "switch_s", "expert_s"):
            assert cols[f][i] == pytest.approx(getattr(r, f), rel=1e-12, abs=1e-15), f


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), experts=st.integers(1, 40), nodes=st.integers(1, 5), slots=st.integers(1, 6),
       batch=st.integers(1, 8), placement=st.sampled_from(list(ExpertPlacement)),
       policy=st.sampled_from(list(CachePolicy)))
def test_the_footprints_real_and_resident_latencies_are_both_serves(seed, experts, nodes, slots, batch, placement,
                                                                    policy):
    """The footprint times its real serve and its all-resident ideal from the real serve's
    outcome: equal, bit for bit, to serving each (the ideal with every node's experts in as
    many slots, replayed through its caches) in closed form, and to the sequential model."""
    from rdusim.engine.coe.placement_closed import latency_and_resident_latency, nodes_outcome, serve_nodes_closed

    rng = np.random.default_rng(seed)
    routes = [rng.integers(0, experts, batch) for _ in range(15)]
    hottest = tuple(int(e) for e in rng.permutation(experts))
    where = place(experts, nodes, placement, hottest)
    hosted = np.bincount(where, minlength=nodes)

    def setups(resident):
        return [ServingSetup(**{**_setup(max(1, int(hosted[j])) if resident else slots,
                                         tuple(e for e in hottest if where[e] == j), experts).__dict__,
                                "policy": policy, "expert_s": (lambda n, j=j: 0.1 * n + 0.003 * j)})
                for j in range(nodes)]

    send = lambda b: 5e-6 + b / 1e9                    # noqa: E731
    kw = dict(send_s=send, prompt_tokens=128, output_tokens=20)
    real, ideal = latency_and_resident_latency(setups(False), nodes_outcome(setups(False), where, routes), **kw)
    for got, resident in ((real, False), (ideal, True)):
        closed = serve_nodes_closed(setups(resident), nodes_outcome(setups(resident), where, routes), **kw)
        assert got.tolist() == closed["latency_s"].tolist()
        seq = serve_nodes(setups(resident), where, routes, **kw)
        assert got.tolist() == pytest.approx([r.latency_s for r in seq], rel=1e-12)
    assert (real >= ideal).all()


def test_prefetch_is_refused_across_nodes():
    s = ServingSetup(**{**_setup(2).__dict__, "prefetch": True})
    with pytest.raises(ValueError, match="prefetch"):
        serve_nodes([s], np.zeros(8, dtype=np.int64), [np.array([0])], send_s=lambda b: 0.0,
                    prompt_tokens=1, output_tokens=1)


EX = "workloads/coe150_two_nodes.yaml"
SMALL = ["--set", "batches=6", "--set", "warmup_batches=2", "--set", "replications=1", "--set", "sweep_batches=4",
         "--set", "sweep_experts=[10]", "--set", "output_tokens=[20]", "--set", "batch_sizes=[8]"]


def test_coe_two_nodes_example_end_to_end(tmp_path, capsys):
    from rdusim.cli import main

    out = tmp_path / "o"
    assert main(["run", EX, "--out", str(out)] + SMALL) == 0
    assert "Spanning nodes" in capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    m = res["metrics"]
    for p in ("sn40l", "dgx_h100"):
        assert m[f"coe.{p}.bs8.tok20.router_network_s"] > 0
        assert 1 <= m[f"coe.{p}.bs8.tok20.nodes_used"] <= 2
        # 10 experts fit in one node's HBM: one node serves them at the all-in-HBM latency
        assert m[f"coe.footprint.{p}.nodes_for10"] == 1
        assert m[f"coe.footprint.{p}.nodes_for150"] >= 1
    rows = [r for r in res["records"] if "router_network_s" in r]
    assert rows and any(r["router_network_s"] > 0 for r in rows)
    for r in rows:
        assert r["latency_s"] == pytest.approx(r["router_s"] + r["router_network_s"] + r["switch_s"] + r["expert_s"])


@pytest.mark.parametrize("sets, key", [
    (["clusters.sn40l.cluster=clusters/dgx_h100_x2.yaml"], "clusters.sn40l.cluster"),
    (["clusters.sn40l.cluster=nope.yaml"], "clusters.sn40l.cluster"),
    (["clusters.sn40l.placement=random"], "clusters.sn40l.placement"),
    (["clusters.sn40l.hosts=2"], "clusters.sn40l.hosts"),
    (["clusters.dgx_a100={cluster: clusters/sn40l_x2.yaml}"], "clusters.dgx_a100"),
    (["cache.prefetch=true"], "cache.prefetch"),
])
def test_bad_coe_cluster_exits_2(tmp_path, capsys, sets, key):
    from rdusim.cli import main

    args = ["run", EX, "--out", str(tmp_path / "o")] + SMALL
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert key in err and EX in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


MAIN = "workloads/coe150.yaml"
MAIN_SMALL = SMALL + ["--set", "platforms={sn40l: {arch: arch/sn40l.yaml, tp: 8}, dgx_h100: {arch: arch/dgx_h100.yaml, tp: 8}}",
                      "--set", "footprint.clusters={sn40l: {cluster: clusters/sn40l_x2.yaml}, "
                               "dgx_h100: {cluster: clusters/dgx_h100_x2.yaml}}"]


def test_the_main_jobs_footprint_is_placed_on_clusters(tmp_path, capsys):
    """coe150 ships footprint.clusters: its scenarios stay on one node, its footprint places
    the experts over k nodes of each platform's cluster network."""
    from rdusim.cli import main

    out = tmp_path / "o"
    assert main(["run", MAIN, "--out", str(out)] + MAIN_SMALL) == 0
    printed = capsys.readouterr().out
    assert "router on node 0: sn40l on sn40l_x2, dgx_h100 on dgx_h100_x2" in printed
    assert "Spanning nodes" not in printed                      # the scenarios run on one node
    res = json.loads((out / "results.json").read_text())
    m = res["metrics"]
    assert not any(k.endswith(".router_network_s") for k in m)
    assert res["extra"]["footprint_clusters"] == {"sn40l": "sn40l_x2", "dgx_h100": "dgx_h100_x2"}
    assert m["coe.footprint.sn40l.nodes_for10"] == 1 and m["coe.footprint.dgx_h100.nodes_for150"] >= 2


@pytest.mark.parametrize("sets, key", [
    (["footprint.clusters={dgx_a100: {cluster: clusters/dgx_a100_x2.yaml}}"], "footprint.clusters.dgx_a100"),
    (["footprint.clusters={sn40l: {cluster: clusters/dgx_h100_x2.yaml}}"], "footprint.clusters.sn40l.cluster"),
    (["cache.prefetch=true"], "cache.prefetch"),
])
def test_bad_footprint_cluster_exits_2(tmp_path, capsys, sets, key):
    from rdusim.cli import main

    args = ["run", MAIN, "--out", str(tmp_path / "o")] + MAIN_SMALL
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert key in err and MAIN in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("policy", ["lru", "static"])
def test_the_footprint_in_closed_form_is_the_reference_footprint(policy):
    """The footprint's closed form (one outcome timed for the real and the all-resident serve;
    no serve at all for k nodes that each hold all their experts in HBM) finds the same
    node counts as serving every k with the sequential reference model."""
    from rdusim.config.workload import load_workload
    from rdusim.config.yamlio import parse_set
    from rdusim.engine import evaluation
    from rdusim.studies import run_study

    sets = ["footprint.clusters={sn40l: {cluster: clusters/sn40l_x2.yaml}, "
            "dgx_h100: {cluster: clusters/dgx_h100_x2.yaml}}", "sweep_experts=[10, 60, 200, 400]",
            "output_tokens=[5]", "batch_sizes=[4]", "replications=1", f"cache.policy={policy}",
            "footprint.latency_tolerance=0.05", "footprint.max_nodes=24"]

    def footprint():
        loaded = load_workload("tests/data/coe_small.yaml", [parse_set(s) for s in sets])
        return {k: v for k, v in run_study(loaded).metrics.items() if k.startswith("coe.footprint.")}

    closed = footprint()
    with evaluation.reference():
        ref = footprint()
    assert closed == ref and len(closed) == 10
