"""The planning search as a sweep (rdusim.fleet.search): its table in OUT/search, --resume
after a partial table or a SIGKILL gives the uninterrupted plan, points stored as errors run
again, the pruned search gives the same answer as the search without pruning, and the
plan is the same on one worker or two."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path

import pytest

from rdusim.cli import main
from rdusim.errors import InputError
from rdusim.fleet.search import SEARCH_DIR, search
from rdusim.fleet.spec import load_plan
from rdusim.sweep.executor import ExecutorSpec

ROOT = Path(__file__).resolve().parent.parent

PLAN = """name: search_plan
kind: plan
models: [llama2-7b]
arrivals: {{process: trace, trace: {root}/data/azure_conv_excerpt.csv, format: azure, time_scale: {scale}}}
requests: 60
warmup_requests: 10
replications: 1
platforms:
  dgx_h100: {{arch: {root}/arch/dgx_h100.yaml, stack: vllm}}
plan:
  slo: {{ttft_p99_s: {ttft}, tbt_p99_s: 0.2, e2e_p99_s: 30.0}}
  tp: [8]
  max_replicas: {top}
  layouts: [{layouts}]
  exhaustive: {exhaustive}
  router_latency_s: {{value: 2.0e-4, source: "assumed: test"}}
  clusters: {{dgx_h100: {root}/clusters/dgx_h100_x2.yaml}}
"""


def plan_file(tmp_path: Path, name: str = "p.yaml", ttft: float = 2.0, top: int = 2,
              layouts: str = "colocated, disaggregated", exhaustive: bool = False, scale: float = 4.0) -> Path:
    f = tmp_path / name
    f.write_text(PLAN.format(root=ROOT, ttft=ttft, top=top, layouts=layouts, exhaustive=str(exhaustive).lower(),
                             scale=scale))
    return f


def one_worker() -> ExecutorSpec:
    return ExecutorSpec(workers=1)


def _points(out: Path) -> int:
    """Points in the search table (read-only; 0 before it has its schema)."""
    from contextlib import closing

    db = out / SEARCH_DIR / "sweep.sqlite"
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as conn:
            return conn.execute("SELECT COUNT(*) FROM points").fetchone()[0]
    except sqlite3.OperationalError:     # no file yet, or no table yet
        return 0


def _plan_of(out: Path) -> dict:
    doc = json.loads((out / "results.json").read_text())
    for k in ("plan.points_simulated", "plan.points_stored"):
        doc["metrics"].pop(k)
    return doc


def test_pruned_search_gives_the_answer_of_the_search_without_pruning(tmp_path):
    # a TTFT limit between the TTFT p99 of one prefill replica and of two (the trace at 100x
    # its rate): the pairs with one prefill replica miss it, whatever their decode pool
    every = search(load_plan(str(plan_file(tmp_path, "all.yaml", top=3, layouts="disaggregated", exhaustive=True,
                                           scale=100.0))), tmp_path / "all", one_worker())
    ttft = {r["prefill_replicas"]: r["ttft.p99_s"] for r in every.rows}
    assert ttft[1] > ttft[2]
    assert all(r["ttft.p99_s"] == ttft[r["prefill_replicas"]] for r in every.rows)   # the prefill pool's alone
    f = plan_file(tmp_path, ttft=(ttft[1] + ttft[2]) / 2, top=3, layouts="disaggregated", scale=100.0)
    pruned = search(load_plan(str(f)), tmp_path / "pruned", one_worker())
    full = search(load_plan(str(f)), tmp_path / "full", one_worker(), prune=False)
    assert len(pruned.rows) < len(full.rows)                    # something was pruned
    key = lambda r: (r["prefill_replicas"], r["decode_replicas"])      # noqa: E731
    by = {key(r): r for r in full.rows}
    assert all(by[key(r)] == r for r in pruned.rows)            # what both simulated: the same rows
    assert not any(r["met"] for r in full.rows if key(r) not in {key(x) for x in pruned.rows})
    drop = lambda rows: [{k: v for k, v in r.items() if k != "forced_by"} for r in rows]   # noqa: E731
    assert drop(pruned.best) == drop(full.best) and pruned.best and pruned.same == full.same


def test_resume_takes_stored_points_and_reruns_errors(tmp_path):
    f = plan_file(tmp_path, top=2, exhaustive=True)
    out = tmp_path / "o"
    first = search(load_plan(str(f)), out, one_worker())
    n = first.ran
    assert n == _points(out) >= 6 and first.stored == 0
    again = search(load_plan(str(f)), out, one_worker(), resume=True)
    assert (again.ran, again.stored) == (0, n) and again.rows == first.rows and again.same == first.same
    conn = sqlite3.connect(str(out / SEARCH_DIR / "sweep.sqlite"))
    with conn:
        conn.execute("DELETE FROM points WHERE idx IN (SELECT idx FROM points ORDER BY idx DESC LIMIT 2)")
        conn.execute("UPDATE points SET status = 'error', metrics = '{}', error = 'boom' "
                     "WHERE idx = (SELECT MIN(idx) FROM points)")
    conn.close()
    resumed = search(load_plan(str(f)), out, one_worker(), resume=True)
    assert (resumed.ran, resumed.stored) == (3, n - 3)
    assert resumed.rows == first.rows and resumed.best == first.best and resumed.same == first.same
    assert resumed.by_status["error"] == 0 and _points(out) == n
    # a different plan is not resumed into this table; without --resume the table is replaced
    other = plan_file(tmp_path, "other.yaml", top=2, exhaustive=True, ttft=1.0)
    with pytest.raises(InputError, match="the same plan file"):
        search(load_plan(str(other)), out, one_worker(), resume=True)
    fresh = search(load_plan(str(f)), out, one_worker())
    assert (fresh.ran, fresh.stored) == (n, 0) and fresh.rows == first.rows


def test_one_worker_or_two_the_same_plan(tmp_path, capsys):
    f = plan_file(tmp_path, top=2)
    assert main(["plan", str(f), "--out", str(tmp_path / "a"), "--jobs", "1"]) == 0
    assert main(["plan", str(f), "--out", str(tmp_path / "b"), "--workers", "2"]) == 0
    assert "simulated" in capsys.readouterr().out
    assert _plan_of(tmp_path / "a") == _plan_of(tmp_path / "b")
    assert (tmp_path / "b" / SEARCH_DIR / "sweep.csv").is_file()
    # the search's table is a sweep folder: rdusim report draws it
    assert main(["report", str(tmp_path / "b" / SEARCH_DIR), "--out", str(tmp_path / "rep")]) == 0
    assert len(list((tmp_path / "rep" / "figures").glob("*.png"))) == 3


def test_sigkill_then_resume_gives_the_uninterrupted_plan(tmp_path, capsys, kill_part_way):
    f = plan_file(tmp_path, top=2, exhaustive=True)
    part, full = tmp_path / "part", tmp_path / "full"
    cmd = [sys.executable, "-m", "rdusim.cli", "plan", str(f), "--out", str(part), "--jobs", "1"]
    kill_part_way(cmd, lambda: _points(part), 2, cwd=ROOT, what="plan")
    done = _points(part)
    assert not (part / "results.json").exists()
    assert main(["plan", str(f), "--out", str(full), "--jobs", "1"]) == 0
    total = json.loads((full / "results.json").read_text())["metrics"]["plan.points_simulated"]
    assert 2 <= done < total, "the kill came too late to test anything"
    assert main(["plan", str(f), "--out", str(part), "--jobs", "1", "--resume"]) == 0
    m = json.loads((part / "results.json").read_text())["metrics"]
    assert (m["plan.points_stored"], m["plan.points_simulated"]) == (done, total - done)
    assert _plan_of(part) == _plan_of(full)
    capsys.readouterr()


def test_plan_flags_bad_input_exit_2(tmp_path, capsys):
    f = plan_file(tmp_path)
    assert main(["plan", str(f), "--out", str(tmp_path / "o"), "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err
    assert main(["plan", str(f), "--out", str(tmp_path / "o"), "--executor", "local",
                 "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "--scheduler" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_shared_prefill_pool_run_gives_the_fleets_own_metrics(tmp_path):
    """Disaggregated fleets with the same prefill pool reuse its run (rdusim.fleet.fleet
    ``prefilled``): each fleet's metrics are those of its own run from scratch."""
    from rdusim.cache import RunCache
    from rdusim.fleet.evaluate import Simulator
    from rdusim.fleet.fleet import Layout

    loaded = load_plan(str(plan_file(tmp_path, scale=100.0)))
    shared, cache = Simulator(loaded, RunCache()), RunCache()
    at = lambda i, j: shared.space.at("llama2-7b", Layout.DISAGGREGATED, "dgx_h100", "dgx_h100", 8, i, j)  # noqa: E731
    got = [shared.metrics(at(1, j)) for j in (1, 2)]
    assert len(shared._prefilled) == 1
    want = [Simulator(loaded, cache).metrics(at(1, j)) for j in (1, 2)]
    assert got == want and got[0] != got[1]


def test_prefix_aware_router_beats_least_outstanding_on_conversation_traffic():
    """workloads/plan_prefix.yaml (90% of requests continue one of 100 conversations, prefix
    caching on): on two and three replicas the prefix-aware router finds a request's prefix
    where it is cached; least outstanding spreads a conversation over the replicas."""
    import dataclasses

    from rdusim.cache import RunCache
    from rdusim.fleet.evaluate import Simulator
    from rdusim.fleet.fleet import Layout
    from rdusim.fleet.router import RouterPolicy

    loaded, cache = load_plan(str(ROOT / "workloads" / "plan_prefix.yaml")), RunCache()
    got = {}
    for policy in (RouterPolicy.PREFIX_AWARE, RouterPolicy.LEAST_OUTSTANDING):
        sim = Simulator(dataclasses.replace(loaded, plan=dataclasses.replace(loaded.plan, router=policy)), cache)
        for n in (1, 2, 3):
            got[policy, n] = sim.metrics(sim.space.at("llama2-7b", Layout.COLOCATED, "dgx_h100", "dgx_h100", 8, 0, n))
    aware, lo = RouterPolicy.PREFIX_AWARE, RouterPolicy.LEAST_OUTSTANDING
    assert got[aware, 1] == got[lo, 1]                     # one replica: no choice to make
    for n in (2, 3):
        a, b = got[aware, n], got[lo, n]
        assert a["prefix_cache.hit_rate"] > b["prefix_cache.hit_rate"] + 0.1
        assert a["prefix_cache.saved_prefill_tokens"] > b["prefix_cache.saved_prefill_tokens"]
        assert a["ttft.p99_s"] < b["ttft.p99_s"] and a["ttft.mean_s"] < b["ttft.mean_s"]
    # every replica count: the hit rate of one server (each conversation's prefix in one cache)
    assert got[aware, 2]["prefix_cache.hit_rate"] == got[aware, 1]["prefix_cache.hit_rate"]


def test_a_failed_point_stops_the_search_and_resume_runs_it_again(tmp_path, capsys):
    from rdusim.fleet.search import PointFailed

    f = plan_file(tmp_path, top=1, layouts="colocated")
    loaded, good = load_plan(str(f)), f.read_text()
    f.write_text("kind: plan\nmodels: 3\n")          # what the worker reads: a bad plan file
    with pytest.raises(PointFailed, match="models: expected"):
        search(loaded, tmp_path / "o", one_worker())
    assert _points(tmp_path / "o") == 1
    assert main(["plan", str(f), "--out", str(tmp_path / "p"), "--jobs", "1"]) == 2     # caught before any run
    f.write_text(good)
    again = search(loaded, tmp_path / "o", one_worker(), resume=True)
    assert (again.ran, again.stored, again.by_status) == (1, 0, {"ok": 1, "error": 0, "oom": 0})
    assert again.best and again.best[0]["decode_replicas"] == 1
    capsys.readouterr()


def test_the_plan_on_dask_equals_the_plan_on_local_processes(tmp_path, capsys):
    pytest.importorskip("distributed", reason="the dask extra is not installed (pip install -e '.[dask]')")
    f = plan_file(tmp_path, top=1)
    assert main(["plan", str(f), "--out", str(tmp_path / "local"), "--jobs", "1"]) == 0
    assert main(["plan", str(f), "--out", str(tmp_path / "dask"), "--executor", "dask", "--workers", "1"]) == 0
    assert _plan_of(tmp_path / "local") == _plan_of(tmp_path / "dask")
    capsys.readouterr()


def test_a_fleet_that_rejected_requests_ends_its_group(tmp_path):
    """Rejections do not depend on the replicas (tests/test_fleet.py): the walk stops at a
    fleet that rejected requests (pruned) where the search without pruning walks on to
    fleets that reject them too."""
    from rdusim.fleet.fleet import Layout
    from rdusim.fleet.plan import Space

    space = Space(load_plan(str(plan_file(tmp_path, top=3))))
    bad = {"met": False, "binding": "memory (requests rejected)", "rejected": 2}
    for prune, walked in ((True, 1), (False, 3)):
        w, n = space.walk(("llama2-7b", Layout.COLOCATED, "dgx_h100", "dgx_h100", 8), prune), 0
        next(w)
        try:
            while True:
                n += 1
                w.send(bad)
        except StopIteration:
            pass
        assert n == walked


def test_the_plan_equals_the_planner_before_the_search_was_a_sweep(tmp_path, capsys):
    """tests/data/golden/plan_tiny.json: the exhaustive two-platform plan (co-located and
    disaggregated, mixed) as the planner wrote it before the search became a sweep (and before
    the prefill pool's run was shared). RDUSIM_UPDATE_GOLDEN=1 rewrites it (say why)."""
    text = PLAN.format(root=ROOT, ttft=2.0, top=2, layouts="colocated, disaggregated", exhaustive="true", scale=4.0)
    text = text.replace("name: search_plan", "name: tiny_plan").replace(
        "  dgx_h100: {arch:", f"  sn40l: {{arch: {ROOT}/arch/sn40l.yaml, stack: sambanova}}\n  dgx_h100: {{arch:")
    text = text.replace("clusters: {dgx_h100:", f"clusters: {{sn40l: {ROOT}/clusters/sn40l_x2.yaml, dgx_h100:")
    text = text.replace("  exhaustive: true\n", "  mixed: true\n  exhaustive: true\n")
    f = tmp_path / "tiny.yaml"
    f.write_text(text)
    assert main(["plan", str(f), "--out", str(tmp_path / "o"), "--jobs", "2"]) == 0
    got = _plan_of(tmp_path / "o")
    path = ROOT / "tests" / "data" / "golden" / "plan_tiny.json"
    if os.environ.get("RDUSIM_UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps({"comment": json.loads(path.read_text())["comment"], "metrics": got["metrics"],
                                    "configurations": got["configurations"], "same_nodes": got["same_nodes"]},
                                   indent=1) + "\n")
    want = json.loads(path.read_text())
    assert got["metrics"] == pytest.approx(want["metrics"], rel=1e-12)
    assert len(got["configurations"]) == len(want["configurations"]) == 20
    for g, w in zip(got["configurations"], want["configurations"]):
        assert {k: v for k, v in g.items() if not isinstance(v, float)} == \
            {k: v for k, v in w.items() if not isinstance(v, float)}
        assert {k: v for k, v in g.items() if isinstance(v, float)} == \
            pytest.approx({k: v for k, v in w.items() if isinstance(v, float)}, rel=1e-12)
    assert got["same_nodes"] == want["same_nodes"]
    capsys.readouterr()
