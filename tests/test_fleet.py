"""The fleet layer: one replica replays the single server to the bit, the router against a
hand-computed least-loaded schedule, disaggregated KV bytes, Little's law on every pool, and
the plan command's bad-input path."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from rdusim.config.model import load_model
from rdusim.config.stack import SchedulerSpec
from rdusim.fleet.fleet import Fleet, Pool, run_fleet
from rdusim.fleet.network import KvLink
from rdusim.fleet.evaluate import fleet_metrics
from rdusim.fleet.pool import run_pool
from rdusim.fleet.router import RouterPolicy
from rdusim.serve.arrivals import Arrival
from rdusim.serve.continuous import run_continuous
from rdusim.serve.metrics import Slo
from rdusim.serve.server import Seq, ServerSetup


class Fixed:
    """A step model with fixed times: prefill 1.0 s per step, decode 0.25 s per step."""

    def decode_s(self, batch, context):
        return 0.25

    def decode_run_s(self, batch, context, steps):
        return np.full(steps, 0.25)

    def packed_prefill_s(self, pieces):
        return 1.0

    def mixed_s(self, pieces, decode_batch, decode_context):
        return 1.0


def setup(blocks=1000, chunked=False):
    sc = SchedulerSpec(max_sequences=8, max_batched_tokens=4096, kv_block_tokens=16, chunked_prefill=chunked)
    return ServerSetup(Fixed(), sc, blocks)


class Plat:
    def __init__(self, s, model=None):
        self.s, self.name = s, "fake"
        self.dep = type("D", (), {"model": model})()

    def setup(self):
        return self.s


def stream(n=300, rate=1.5, seed=0):
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1 / rate, n))
    return [Arrival(float(a), int(p), int(o)) for a, p, o in zip(t, rng.integers(16, 600, n), rng.integers(1, 40, n))]


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("policy", list(RouterPolicy))
def test_one_replica_equals_the_server_to_the_bit(policy, chunked):
    arr = stream()
    one = run_continuous(setup(chunked=chunked), arr, warmup=10)
    run = run_pool(setup(chunked=chunked), [Seq(i, a) for i, a in enumerate(arr)], 1, policy, warmup=10)
    got = run.logs[0]
    key = lambda q: (q.id, q.start_s, q.first_token_s, q.finish_s, q.preemptions)  # noqa: E731
    assert [key(q) for q in got.seqs] == [key(q) for q in one.seqs]
    assert (got.steps, got.kv_area, got.tbt_s) == (one.steps, one.kv_area, one.tbt_s)


def test_least_outstanding_against_a_hand_computed_schedule():
    # one-token requests (prefill 1 s, done at its end), two replicas:
    # t=0.0 -> r0 (both empty); 0.1 -> r1 (r0 holds 1); 0.2 -> r0 (1 each: tie, lowest);
    # 1.05: r0 finished request 0 at 1.0, holds request 2; r1 finished request 1 at 1.1? no, r1
    # started at 0.1 so it ends at 1.1 and still holds it -> both hold 1 -> r0;
    # 1.15: r0 holds 2 and 3 (3 waits), r1 is empty -> r1
    times = [0.0, 0.1, 0.2, 1.05, 1.15]
    seqs = [Seq(i, Arrival(t, 32, 1)) for i, t in enumerate(times)]
    run = run_pool(setup(), seqs, 2, RouterPolicy.LEAST_OUTSTANDING)
    assert run.replica == [0, 1, 0, 0, 1]
    rr = run_pool(setup(), [Seq(i, Arrival(t, 32, 1)) for i, t in enumerate(times)], 2, RouterPolicy.ROUND_ROBIN)
    assert rr.replica == [0, 1, 0, 1, 0]
    # request 2 on r0 prefilled 1.0..2.0; request 3 joins r0's queue at 1.05 -> 2.0..3.0
    finish = {q.id: q.finish_s for lg in run.logs for q in lg.seqs}
    assert finish == pytest.approx({0: 1.0, 1: 1.1, 2: 2.0, 3: 3.0, 4: 2.15})


def test_prefix_aware_against_a_hand_computed_schedule():
    # one-token requests of 64 tokens whose first 48 (3 blocks of 16) are a shared prefix
    # A, B or C; prefill 1 s. Prefix-aware: t=0 A -> r0 (nothing cached: least loaded);
    # 0.5 B -> r1 (nothing cached -- A's blocks register at the end of its prefill, 1.0 --
    # and r0 holds one); 5 A -> r0 (its cache holds A's 3 blocks); 6 B -> r1 (B's);
    # 7 C -> r0 (nowhere: both idle, lowest index). Least outstanding sends 6 B to r0 (both
    # idle), where B is not cached: 3 blocks hit instead of 6.
    times, prefixes = [0.0, 0.5, 5.0, 6.0, 7.0], [0, 1, 0, 1, 2]
    mk = lambda: [Seq(i, Arrival(t, 64, 1, prefix=p, prefix_tokens=48))   # noqa: E731
                  for i, (t, p) in enumerate(zip(times, prefixes))]
    cached = ServerSetup(Fixed(), SchedulerSpec(max_sequences=8, max_batched_tokens=4096, kv_block_tokens=16,
                                                prefix_caching=True), 1000)
    aware = run_pool(cached, mk(), 2, RouterPolicy.PREFIX_AWARE)
    lo = run_pool(cached, mk(), 2, RouterPolicy.LEAST_OUTSTANDING)
    assert aware.replica == [0, 1, 0, 1, 0] and lo.replica == [0, 1, 0, 0, 0]
    hits = lambda run: sum(lg.prefix_cache.hits for lg in run.logs)    # noqa: E731
    assert (hits(aware), hits(lo)) == (6, 3)
    assert sum(lg.prefix_cache.queried for lg in aware.logs) == 15
    # without prefix caching there is nothing to match: least outstanding's choices
    plain = run_pool(setup(), mk(), 2, RouterPolicy.PREFIX_AWARE)
    assert plain.replica == lo.replica


def test_rejections_do_not_depend_on_the_replicas_or_the_router():
    # a replica rejects a request whose whole sequence cannot fit its KV pool (40 blocks of
    # 16 tokens here): the same requests on one, two or three replicas, whatever the router
    # (why a plan's group ends at a fleet that rejected requests: rdusim.fleet.plan)
    rng = np.random.default_rng(1)
    arr = [Arrival(float(t), int(p), 8) for t, p in zip(np.cumsum(rng.exponential(0.5, 80)), rng.integers(16, 900, 80))]
    counts = {(n, pol): sum(lg.rejected_kv for lg in run_pool(setup(blocks=40), [Seq(i, a) for i, a in enumerate(arr)],
                                                               n, pol).logs)
              for n in (1, 2, 3) for pol in RouterPolicy}
    assert len(set(counts.values())) == 1 and counts[1, RouterPolicy.ROUND_ROBIN] > 0


def test_disaggregated_kv_bytes_equal_the_prompts_kv():
    model = load_model("llama2-7b")
    arr = stream(60)
    link = KvLink(2.5e10 * 0.9, 5e-6, 8)
    fleet = Fleet(Pool(Plat(setup(), model), 2, 1), Pool(Plat(setup(), model), 1, 1), link)
    run = run_fleet(fleet, arr)
    multi = [a for a in arr if a.output_tokens > 1]
    # llama2-7b: 32 layers x 32 KV heads x 128 dims x K and V x 2 bytes (fp16) per token
    assert run.kv_bytes == [float(a.prompt_tokens * 32 * 32 * 128 * 2 * 2) for a in multi]
    assert run.kv_s == pytest.approx([5e-6 + b / (2.25e10 * 8) for b in run.kv_bytes])
    for q, a in zip(run.seqs, arr):           # every request ends, and its first token came first
        assert q.arrival_s == a.arrival_s and q.arrival_s < q.first_token_s <= q.finish_s
        assert q.generated == a.output_tokens


@pytest.mark.parametrize("layout", ["colocated", "disaggregated"])
def test_littles_law_on_every_pool(layout):
    model = load_model("llama2-7b")
    arr = stream(800, rate=1.2, seed=3)
    link = KvLink(2.25e10, 5e-6, 8)
    fleet = Fleet(Pool(Plat(setup(), model), 2, 1)) if layout == "colocated" else \
        Fleet(Pool(Plat(setup(), model), 2, 1), Pool(Plat(setup(), model), 2, 1), link)
    m = fleet_metrics(fleet, arr, 50, Slo(10.0, 1.0))
    pools = ["serve"] if layout == "colocated" else ["prefill", "decode"]
    for p in pools:
        L, lw = m[f"pool.{p}.little.in_system_mean"], m[f"pool.{p}.little.rate_x_time"]
        assert L == pytest.approx(lw, rel=0.05), p


def test_plan_bad_input_exits_2(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("name: x\nkind: plan\nmodels: [llama2-7b]\nplatforms: {sn40l: {arch: arch/sn40l.yaml}}\n"
                   "plan: {slo: {ttft_p99_s: -1}, router_latency_s: {value: 0.0, source: s}}\n")
    r = subprocess.run([sys.executable, "-m", "rdusim.cli", "plan", str(bad), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert "plan.slo.ttft_p99_s" in r.stderr and "Traceback" not in r.stderr


TINY = """name: tiny_plan
kind: plan
models: [llama2-7b]
arrivals: {{process: trace, trace: {trace}, format: azure, time_scale: 4.0}}
requests: 60
warmup_requests: 10
replications: 1
platforms:
  sn40l: {{arch: arch/sn40l.yaml, stack: sambanova}}
  dgx_h100: {{arch: arch/dgx_h100.yaml, stack: vllm}}
plan:
  slo: {{ttft_p99_s: 2.0, tbt_p99_s: 0.2, e2e_p99_s: 30.0}}
  tp: [8]
  max_replicas: 2
  layouts: [colocated, disaggregated]
  mixed: true
  router_latency_s: {{value: 2.0e-4, source: "assumed: test"}}
  clusters: {{sn40l: {root}/clusters/sn40l_x2.yaml, dgx_h100: {root}/clusters/dgx_h100_x2.yaml}}
"""


def test_plan_cli_end_to_end_and_its_keys_documented(tmp_path, capsys):
    import json
    from pathlib import Path

    from rdusim.cli import main
    from test_docs_keys import undocumented

    root = Path(__file__).resolve().parent.parent
    f = tmp_path / "tiny.yaml"
    f.write_text(TINY.format(trace=root / "data" / "azure_conv_excerpt.csv", root=root))
    out = tmp_path / "out"
    assert main(["plan", str(f), "--out", str(out), "--jobs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "smallest fleet meeting the SLO" in printed and "sn40l x1 (tp8)" in printed
    doc = json.loads((out / "results.json").read_text())
    assert not undocumented("plan", list(doc["metrics"]))
    # every platform and pair has a smallest fleet here, the disaggregated ones on 2 nodes
    assert doc["metrics"]["plan.llama2-7b.disaggregated.sn40l.dgx_h100.nodes"] == 2
    # priced: only fleets of H100s (the SN40L has no published price); one H100 node meets it
    from rdusim.config.arch import load_arch
    price = load_arch(root / "arch" / "dgx_h100.yaml").price_per_node_hour_usd
    assert doc["metrics"]["plan.llama2-7b.cheapest.usd_per_hour"] == price
    assert "plan.llama2-7b.colocated.sn40l.sn40l.usd_per_hour" not in doc["metrics"]
    assert (out / "figures" / "pareto.png").stat().st_size > 1000
    assert "figures/pareto.png" in (out / "report.md").read_text()
    rows = doc["configurations"]
    assert all(r["met"] == (r["binding_ratio"] is not None and r["binding_ratio"] <= 1) for r in rows)


def test_plan_synthetic_traffic_carries_intervals(tmp_path):
    import json
    from pathlib import Path

    from rdusim.cli import main
    from test_docs_keys import undocumented

    root = Path(__file__).resolve().parent.parent
    text = TINY.format(trace=root / "data" / "azure_conv_excerpt.csv", root=root)
    text = text.replace("arrivals: {process: trace", "arrivals: {process: poisson, rate_per_s: 4.0}\n#")
    text = text.replace("replications: 1", "replications: 3").replace("[colocated, disaggregated]", "[colocated]")
    f = tmp_path / "syn.yaml"
    f.write_text(text)
    assert main(["plan", str(f), "--out", str(tmp_path / "o"), "--jobs", "1"]) == 0
    m = json.loads((tmp_path / "o" / "results.json").read_text())["metrics"]
    assert not undocumented("plan", list(m))
    k = "plan.llama2-7b.colocated.dgx_h100.dgx_h100.e2e.p99"
    assert m[f"{k}_ci_lo_s"] <= m[f"{k}_s"] <= m[f"{k}_ci_hi_s"] and m[f"{k}_ci_lo_s"] < m[f"{k}_ci_hi_s"]


@pytest.mark.parametrize("edit, key", [
    (("models: [llama2-7b]", "models: [llama2-7b, nope]"), "models[1]"),
    (("tp: [8]", "tp: [8, 3]"), "plan.tp[1]"),
    (("router_latency_s", "router: fastest\n  router_latency_s"), "plan.router"),
    (("sn40l: {root}/clusters/sn40l_x2.yaml, ", ""), "plan.clusters.sn40l"),
    (("kind: plan", "kind: serve"), "kind"),
])
def test_plan_bad_inputs_name_the_key(tmp_path, capsys, edit, key):
    from pathlib import Path

    from rdusim.cli import main

    root = Path(__file__).resolve().parent.parent
    text = TINY.replace(*edit).format(trace=root / "data" / "azure_conv_excerpt.csv", root=root)
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    assert main(["plan", str(f), "--out", str(tmp_path / "o"), "--jobs", "1"]) == 2
    err = capsys.readouterr().err
    assert f"{f}: {key}: expected" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "results.json").exists()


def test_one_replica_fleet_metrics_equal_rdusim_serve_to_the_bit():
    from rdusim.cache import RunCache
    from rdusim.config.workload import load_workload
    from rdusim.config.workload_serve import Batching
    from rdusim.serve.platform import ServePlatform, with_scheduler
    from rdusim.studies.serve import Streams, _model, serve_point

    loaded = load_workload("workloads/serve_llama2_7b.yaml", [("requests", 150), ("warmup_requests", 20)])
    spec = loaded.spec
    cfg = _model(spec.model, loaded.file, "model")
    plat = ServePlatform.build("dgx_h100", with_scheduler(loaded.deployment("dgx_h100", cfg), spec.scheduler),
                               RunCache())
    stream = Streams(loaded, cfg.max_position_embeddings).at(spec.arrivals.rate_per_s, spec.requests, 0)
    _, want = serve_point(plat, Batching.CONTINUOUS, stream, spec)
    got = fleet_metrics(Fleet(Pool(plat, 1, 1)), list(stream.arrivals), spec.warmup_requests,
                        Slo(spec.slo.ttft_s, spec.slo.tpot_s))
    shared = [k for k in want if k in got and k not in ("truncated", "rejected")]
    assert len(shared) >= 40 and "tbt.p99_s" in shared and "little.in_system_mean" in shared
    assert {k: got[k] for k in shared} == {k: want[k] for k in shared}
