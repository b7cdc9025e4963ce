"""The planning search: for each model and platform (and platform pair, disaggregated),
every TP degree, the fewest replicas whose p99 latencies meet the SLO.

Co-located: replicas 1, 2, ... up to ``max_replicas`` until the SLO is met (more replicas
behind the router only lower the load on each: the first that meets it is the smallest).
Disaggregated: (prefill replicas, decode replicas) pairs in order of nodes, the first pair
meeting the SLO. Every configuration simulated is a row (nodes, p99s, whether it met the SLO,
the binding constraint: the largest p99 / limit ratio) with its price per hour where every
machine in it has a published node price (rdusim.config.machine); the cheapest is among those.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

from rdusim.cache import RunCache
from rdusim.fleet.fleet import Fleet, Layout, Pool, merged, pool_log, run_fleet
from rdusim.fleet.network import kv_link
from rdusim.fleet.spec import LoadedPlan
from rdusim.parallel import fork_map
from rdusim.serve.metrics import Slo, replicated, summarize
from rdusim.serve.platform import ServePlatform, with_scheduler
from rdusim.studies.serve import Streams, _model

LITTLE = ("little.in_system_mean", "little.arrival_rate_per_s", "little.rate_x_time")


def fleet_metrics(fleet: Fleet, arrivals, warmup: int, slo: Slo) -> dict[str, Any]:
    run = run_fleet(fleet, arrivals, warmup)
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


def fleet_usd_per_hour(fleet: Fleet):
    """The fleet's price per hour from the machines' published node prices (the machine
    interface's ``price_per_node_hour_usd``); None where a pool's machine has no price."""
    total = 0.0
    for p in (fleet.prefill, fleet.serve):
        if p is None:
            continue
        price = p.platform.dep.arch.price_per_node_hour_usd
        if price is None:
            return None
        total += price * p.replicas * p.nodes_per_replica
    return total


def cheapest(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model, the priced fleet meeting the SLO with the lowest price per hour."""
    out = {}
    for r in rows:
        if r["met"] and r["usd_per_hour"] is not None and (
                r["model"] not in out or r["usd_per_hour"] < out[r["model"]]["usd_per_hour"]):
            out[r["model"]] = r
    return list(out.values())


def binding(m: dict[str, Any], limits: dict[str, float]) -> tuple[bool, str, float]:
    """Met?, the binding constraint (largest value / limit), and that ratio."""
    ratios = {k: (m.get(k, math.inf) / v) for k, v in limits.items()}
    if m.get("rejected", 0) or m.get("measured", 0) == 0:
        return False, "memory (requests rejected)", math.inf
    key = max(ratios, key=lambda k: ratios[k])
    return ratios[key] <= 1.0, key, ratios[key]


class Planner:
    def __init__(self, plan: LoadedPlan, cache: RunCache):
        self.p = plan
        self.cache = cache
        spec = plan.serve.spec
        self.spec = spec
        self.limits = plan.plan.slo.limits()
        self.slo = Slo(spec.slo.ttft_s, spec.slo.tpot_s)
        self.rows: list[dict[str, Any]] = []
        self.plats: dict = {}
        self._arrivals: dict = {}

    def platform(self, model: str, name: str, tp: int) -> ServePlatform:
        key = (model, name, tp)
        if key not in self.plats:
            cfg = _model(model, self.p.file, "models")
            dep = dataclasses.replace(self.p.serve.deployment(name, cfg), tp=tp)
            self.plats[key] = ServePlatform.build(name, with_scheduler(dep, self.spec.scheduler), self.cache)
        return self.plats[key]

    def nodes_per_replica(self, plat: ServePlatform) -> int:
        per = plat.dep.arch.devices_per_node
        return -(-plat.dep.tp // per)

    def evaluate(self, model: str, label: dict, fleet: Fleet, arrivals) -> dict[str, Any]:
        if fleet.serve.platform.kv_blocks == 0 or (fleet.prefill and fleet.prefill.platform.kv_blocks == 0):
            m: dict[str, Any] = {"nodes": fleet.nodes, "oom": 1}
            met, bind, ratio = False, "memory (weights do not fit)", math.inf
        else:
            # one run per independent stream (a trace: one); the p99s their mean, with 95% intervals
            m = replicated([fleet_metrics(fleet, a, self.spec.warmup_requests, self.slo) for a in arrivals])
            met, bind, ratio = binding(m, self.limits)
        row = {"model": model, **label, "nodes": fleet.nodes, "usd_per_hour": fleet_usd_per_hour(fleet),
               "met": met, "binding": bind, "ratio": ratio,
               **{k: m.get(k) for k in list(self.limits) + ["requests_per_s", "kv_transfer.s_mean", "kv_transfer.bytes_mean",
                                                             "rejected"] if k in m},
               **{k.replace("_s", "_ci_lo_s"): m[k.replace("_s", "_ci_lo_s")] for k in self.limits
                  if k.replace("_s", "_ci_lo_s") in m},
               **{k.replace("_s", "_ci_hi_s"): m[k.replace("_s", "_ci_hi_s")] for k in self.limits
                  if k.replace("_s", "_ci_hi_s") in m},
               "metrics": m}
        self.rows.append(row)
        return row

    def groups(self) -> list[tuple]:
        """The independent parts of the search: (model, layout, prefill, decode platform, tp)."""
        plan, names = self.p.plan, list(self.spec.platforms)
        out = []
        for model in self.p.models:
            for layout in plan.layouts:
                pairs = [(n, n) for n in names] if layout == Layout.COLOCATED else \
                    [(a, b) for a in names for b in names if a == b or plan.mixed]
                out += [(model, layout, a, b, tp) for a, b in pairs for tp in plan.tp]
        return out

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

    def group(self, g: tuple) -> list[dict[str, Any]]:
        model, layout, a, b, tp = g
        self.rows = []
        if layout == Layout.COLOCATED:
            self._colocated(model, a, tp, self.arrivals(model))
        else:
            self._disaggregated(model, a, b, tp, self.arrivals(model))
        return self.rows

    def run(self) -> list[dict[str, Any]]:
        """Every group, on the run's processes (each group's rows in its order: the same
        rows whatever the number of processes)."""
        return [r for rows in fork_map(self.group, self.groups()) for r in rows]

    def _stop(self, row) -> bool:
        return row["binding"].startswith("memory (weights") or (row["met"] and not self.p.plan.exhaustive)

    def colocated_fleet(self, plat, n: int) -> Fleet:
        return Fleet(Pool(plat, n, self.nodes_per_replica(plat)), router=self.p.plan.router,
                     router_s=self.p.plan.router_latency_s.value)

    def _colocated(self, model, name, tp, arrivals) -> None:
        plat = self.platform(model, name, tp)
        for n in range(1, self.p.plan.max_replicas + 1):
            row = self.evaluate(model, {"layout": "colocated", "prefill": name, "decode": name, "tp": tp,
                                        "prefill_replicas": 0, "decode_replicas": n},
                                self.colocated_fleet(plat, n), arrivals)
            if self._stop(row):
                return

    def _disaggregated(self, model, a, b, tp, arrivals) -> None:
        pa, pb = self.platform(model, a, tp), self.platform(model, b, tp)
        link = kv_link(self.p.clusters[a], self.p.clusters[b], tp, tp)
        top = self.p.plan.max_replicas
        pairs = sorted(((i, j) for i in range(1, top + 1) for j in range(1, top + 1)),
                       key=lambda ij: (ij[0] * self.nodes_per_replica(pa) + ij[1] * self.nodes_per_replica(pb), ij))
        for i, j in pairs:
            fleet = Fleet(Pool(pb, j, self.nodes_per_replica(pb)), Pool(pa, i, self.nodes_per_replica(pa)), link,
                          self.p.plan.router, self.p.plan.router_latency_s.value)
            row = self.evaluate(model, {"layout": "disaggregated", "prefill": a, "decode": b, "tp": tp,
                                        "prefill_replicas": i, "decode_replicas": j}, fleet, arrivals)
            if self._stop(row):
                return

    def same_nodes(self, best: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each smallest disaggregated fleet against co-located serving on the same number of
        nodes, on its prefill platform and on its decode platform."""
        out = []
        for r in best:
            if r["layout"] != "disaggregated":
                continue
            for name in dict.fromkeys((r["prefill"], r["decode"])):
                plat = self.platform(r["model"], name, r["tp"])
                n = r["nodes"] // self.nodes_per_replica(plat)
                if n < 1:
                    continue
                self.rows = []
                c = self.evaluate(r["model"], {"layout": "colocated", "prefill": name, "decode": name, "tp": r["tp"],
                                               "prefill_replicas": 0, "decode_replicas": n},
                                  self.colocated_fleet(plat, n), self.arrivals(r["model"]))
                out.append({"model": r["model"], "disaggregated": _name(r), "colocated": _name(c),
                            "nodes": r["nodes"], **{f"disaggregated.{k}": r.get(k) for k in self.limits},
                            **{f"colocated.{k}": c.get(k) for k in self.limits},
                            "disaggregated.met": r["met"], "colocated.met": c["met"]})
        return out


def _name(r) -> str:
    if r["layout"] == "colocated":
        return f"{r['prefill']} x{r['decode_replicas']} (tp{r['tp']})"
    return f"prefill {r['prefill']} x{r['prefill_replicas']} + decode {r['decode']} x{r['decode_replicas']} (tp{r['tp']})"


def smallest(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model and platform (a disaggregated fleet: its prefill+decode pair), the met
    configuration with the fewest nodes (ties: lowest p99 ratio); with the constraint that
    bound the next smaller configuration tried (what forced the extra replica)."""
    best: dict[tuple, dict] = {}
    for r in rows:
        key = (r["model"], r["layout"], r["prefill"], r["decode"])
        if r["met"] and (key not in best or (r["nodes"], r["ratio"]) < (best[key]["nodes"], best[key]["ratio"])):
            best[key] = r
    out = []
    for key, r in best.items():
        fails = [x for x in rows if (x["model"], x["layout"], x["prefill"], x["decode"]) == key and not x["met"]
                 and x["tp"] == r["tp"]]
        r = dict(r, forced_by=fails[-1]["binding"] if fails else "none (the smallest fleet tried meets it)")
        out.append(r)
    return out


def plan(loaded: LoadedPlan, cache: RunCache) -> tuple[list[dict], list[dict], list[dict], float]:
    """Every configuration's row, the smallest fleets, the same-node comparisons, seconds."""
    t0 = time.perf_counter()
    planner = Planner(loaded, cache)
    rows = planner.run()
    best = smallest(rows)
    return rows, best, planner.same_nodes(best), time.perf_counter() - t0
