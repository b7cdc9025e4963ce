"""Simulating one candidate fleet (in a worker: a local process or a Dask worker).

``run_plan_point`` is the sweep point of a planning search (rdusim.fleet.search): it loads
the plan file once per worker process (its platforms, engine steps and arrival streams kept
for the worker's lifetime, so the points of one model that land on a worker share them),
simulates the fleet under every arrival stream and returns the point's row as plain data.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Optional

from rdusim.cache import RunCache
from rdusim.errors import InputError
from rdusim.fleet.fleet import Fleet, Layout, Pool, merged, pool_log, run_fleet
from rdusim.fleet.network import kv_link
from rdusim.fleet.plan import Candidate, Space
from rdusim.fleet.spec import LoadedPlan, load_plan
from rdusim.results import metric_number
from rdusim.serve.metrics import Slo, replicated, summarize
from rdusim.serve.platform import ServePlatform, with_scheduler
from rdusim.studies.serve import Streams, _model
from rdusim.sweep.point import PointRow, PointStatus
from rdusim.sweep.runner import _Worker as SweepWorker

LITTLE = ("little.in_system_mean", "little.arrival_rate_per_s", "little.rate_x_time")


def fleet_metrics(fleet: Fleet, arrivals, warmup: int, slo: Slo, prefilled: Optional[dict] = None,
                  key=None) -> dict[str, Any]:
    run = run_fleet(fleet, arrivals, warmup, prefilled, key)
    logs = [lg for pr in run.pools.values() for lg in pr.logs]
    m = summarize(merged(run.seqs, logs, warmup), warmup, slo, len(arrivals))
    for name, pr in run.pools.items():
        lg, warm = pool_log(pr, warmup)
        pm = summarize(lg, warm, slo, len(lg.seqs))
        for k in LITTLE + ("requests_per_s",):
            if k in pm:
                m[f"pool.{name}.{k}"] = pm[k]
    if run.kv_bytes:
        m["kv_transfer.bytes_mean"] = sum(run.kv_bytes) / len(run.kv_bytes)
        m["kv_transfer.s_mean"] = sum(run.kv_s) / len(run.kv_s)
        m["kv_transfer.s_max"] = max(run.kv_s)
    m["nodes"] = fleet.nodes
    return m


class Simulator:
    """A plan file's platforms, arrival streams and fleets, built as the points ask."""

    def __init__(self, plan: LoadedPlan, cache: RunCache):
        self.p = plan
        self.cache = cache
        self.space = Space(plan)
        self.spec = plan.serve.spec
        self.slo = Slo(self.spec.slo.ttft_s, self.spec.slo.tpot_s)
        self.plats: dict = {}
        self._arrivals: dict = {}
        self._prefilled: dict = {}      # prefill pool runs, by (model, platform, tp, replicas, stream)

    def platform(self, model: str, name: str, tp: int) -> ServePlatform:
        key = (model, name, tp)
        if key not in self.plats:
            cfg = _model(model, self.p.file, "models")
            dep = dataclasses.replace(self.p.serve.deployment(name, cfg), tp=tp)
            self.plats[key] = ServePlatform.build(name, with_scheduler(dep, self.spec.scheduler), self.cache)
        return self.plats[key]

    def arrivals(self, model: str) -> list:
        """The streams every fleet of ``model`` is simulated under: ``replications``
        independent draws of synthetic traffic (the same on every fleet), or the trace once
        (a replay is one realisation: no interval)."""
        if model not in self._arrivals:
            streams = Streams(self.p.serve, _model(model, self.p.file, "models").max_position_embeddings)
            reps = 1 if streams.trace is not None else self.spec.replications
            self._arrivals[model] = [streams.at(streams.main_rate, self.spec.requests, 0, rep=r).arrivals
                                     for r in range(reps)]
        return self._arrivals[model]

    def fleet(self, c: Candidate) -> Fleet:
        plan = self.p.plan
        dec = self.platform(c.model, c.decode, c.tp)
        serve = Pool(dec, c.decode_replicas, self.space.nodes_per_replica(c.decode, c.tp))
        if c.layout == Layout.COLOCATED:
            return Fleet(serve, router=plan.router, router_s=plan.router_latency_s.value)
        pre = self.platform(c.model, c.prefill, c.tp)
        link = kv_link(self.p.clusters[c.prefill], self.p.clusters[c.decode], c.tp, c.tp)
        return Fleet(serve, Pool(pre, c.prefill_replicas, self.space.nodes_per_replica(c.prefill, c.tp)), link,
                     plan.router, plan.router_latency_s.value)

    def metrics(self, c: Candidate) -> dict[str, Any]:
        """The fleet's metrics: one run per independent stream (a trace: one), the p99s
        their mean with 95% intervals; ``oom: 1`` where a pool's weights do not fit."""
        fleet = self.fleet(c)
        if fleet.serve.platform.kv_blocks == 0 or (fleet.prefill and fleet.prefill.platform.kv_blocks == 0):
            return {"nodes": fleet.nodes, "oom": 1}
        return replicated([fleet_metrics(fleet, a, self.spec.warmup_requests, self.slo, self._prefilled,
                                         (c.model, c.prefill, c.tp, c.prefill_replicas, r))
                           for r, a in enumerate(self.arrivals(c.model))])


@dataclass(frozen=True)
class PlanTask:
    """One candidate fleet for a worker (picklable, plain data)."""

    index: int
    file: str
    seed: int
    params: tuple[tuple[str, Any], ...]
    cache_dir: Optional[str] = None


class _Worker:
    """What a worker process keeps across points: the simulator of each plan file (its
    platforms, engine steps, arrival streams)."""

    sims: dict = {}


def simulator(file: str, seed: int, cache_dir: Optional[str]) -> Simulator:
    key = (file, seed, cache_dir)
    if key not in _Worker.sims:
        _Worker.sims[key] = Simulator(load_plan(file, seed), SweepWorker.run_cache(cache_dir))
    return _Worker.sims[key]


def candidate_of(params: dict[str, Any], index: int) -> Candidate:
    return Candidate(index, params["model"], Layout(params["layout"]), params["prefill"], params["decode"],
                     params["tp"], params["prefill_replicas"], params["decode_replicas"])


def run_plan_point(task: PlanTask) -> dict:
    """Simulate one candidate fleet; a failure is a row with its reason, never an exception."""
    start = time.perf_counter()
    params = dict(task.params)
    metrics: dict[str, Any] = {}
    status, error = PointStatus.OK, ""
    try:
        m = simulator(task.file, task.seed, task.cache_dir).metrics(candidate_of(params, task.index))
        metrics = {k: metric_number(v) for k, v in sorted(m.items()) if isinstance(v, (int, float))}
        if m.get("oom"):
            status, error = PointStatus.OOM, "simulated out of memory: the weights do not fit"
    except InputError as exc:
        status, error = PointStatus.ERROR, str(exc)
    except Exception as exc:   # noqa: BLE001 - a failure at this point, recorded with its type
        status, error = PointStatus.ERROR, f"internal error: {type(exc).__name__}: {exc}"
    return PointRow(task.index, params, task.seed, status, metrics, error, time.perf_counter() - start).to_message()
