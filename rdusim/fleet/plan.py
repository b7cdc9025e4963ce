"""The planning search: for each model and platform (and platform pair, disaggregated),
every TP degree, the fewest replicas whose p99 latencies meet the SLO.

The search space is a list of :class:`Candidate` fleets, each with a fixed index (the
point's index in the sweep store, rdusim.fleet.search). A group of the search (model,
layout, prefill and decode platform, TP) walks its candidates in order and stops early:

- co-located: replicas 1, 2, ... up to ``max_replicas`` until the SLO is met (more
  replicas behind the router only lower the load on each: the first that meets it is the
  smallest);
- disaggregated: (prefill replicas, decode replicas) pairs in order of nodes, the first
  pair meeting the SLO. A request's first token comes from the prefill pool alone (it runs
  first and whole, rdusim.fleet.fleet), so every pair with the same prefill pool has the
  same TTFT sample: once a pair with no rejected request misses the TTFT limit, the pairs
  with that prefill pool are not simulated (they cannot meet the SLO; the answer is the
  same as without the pruning, tests/test_plan_search.py).

Either layout: a fleet that rejected requests (a whole sequence larger than a replica's KV
pool) ends its group -- every replica count rejects the same requests.

``exhaustive: true`` walks every candidate (for the Pareto plot). Every configuration
simulated is a row (nodes, p99s with their intervals, whether it met the SLO, the binding
constraint: the largest p99 / limit ratio) with its price per hour where every machine in it
has a published node price (rdusim.config.machine); the cheapest is among those.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Generator, Iterator

from rdusim.fleet.fleet import Layout
from rdusim.fleet.spec import LoadedPlan

Walk = Generator["Candidate", dict, None]


@dataclass(frozen=True)
class Candidate:
    """One fleet configuration of the search space."""

    index: int
    model: str
    layout: Layout
    prefill: str              # co-located: the platform (also in ``decode``)
    decode: str
    tp: int
    prefill_replicas: int     # co-located: 0
    decode_replicas: int

    def label(self) -> dict[str, Any]:
        return {"layout": self.layout.value, "prefill": self.prefill, "decode": self.decode, "tp": self.tp,
                "prefill_replicas": self.prefill_replicas, "decode_replicas": self.decode_replicas}

    def params(self) -> dict[str, Any]:
        """The point's swept values as the sweep store keeps them."""
        return {"model": self.model, **self.label()}


class Space:
    """The candidates of a plan file, indexed in a fixed order (models, TP degrees, then
    co-located fleets of every platform up to ``colocated_top`` replicas -- beyond
    ``max_replicas`` for the same-node comparisons -- then every ordered platform pair's
    replica pairs up to ``max_replicas``), with their nodes and prices."""

    def __init__(self, p: LoadedPlan):
        self.p = p
        self.names = list(p.serve.spec.platforms)
        top = p.plan.max_replicas
        per = [self.nodes_per_replica(n, tp) for n in self.names for tp in p.plan.tp]
        self.colocated_top = 2 * top * -(-max(per) // min(per))
        self._index: dict[tuple, Candidate] = {}
        i = 0
        for model in p.models:
            for tp in p.plan.tp:
                for name in self.names:
                    for n in range(1, self.colocated_top + 1):
                        self._add(Candidate(i, model, Layout.COLOCATED, name, name, tp, 0, n))
                        i += 1
                for a in self.names:
                    for b in self.names:
                        for pi in range(1, top + 1):
                            for dj in range(1, top + 1):
                                self._add(Candidate(i, model, Layout.DISAGGREGATED, a, b, tp, pi, dj))
                                i += 1
        self.size = i

    def _add(self, c: Candidate) -> None:
        self._index[(c.model, c.layout, c.prefill, c.decode, c.tp, c.prefill_replicas, c.decode_replicas)] = c

    def candidates(self) -> list[Candidate]:
        return list(self._index.values())

    def at(self, model: str, layout: Layout, prefill: str, decode: str, tp: int, pre: int, dec: int) -> Candidate:
        return self._index[(model, layout, prefill, decode, tp, pre, dec)]

    def nodes_per_replica(self, name: str, tp: int) -> int:
        return -(-tp // self.p.serve.archs[name].devices_per_node)

    def nodes(self, c: Candidate) -> int:
        return (c.prefill_replicas * self.nodes_per_replica(c.prefill, c.tp)
                + c.decode_replicas * self.nodes_per_replica(c.decode, c.tp))

    def usd_per_hour(self, c: Candidate):
        """The fleet's price per hour from the machines' published node prices (the machine
        interface's ``price_per_node_hour_usd``); None where a pool's machine has no price."""
        total = 0.0
        for name, n in ((c.prefill, c.prefill_replicas), (c.decode, c.decode_replicas)):
            if n == 0:
                continue
            price = self.p.serve.archs[name].price_per_node_hour_usd
            if price is None:
                return None
            total += price * n * self.nodes_per_replica(name, c.tp)
        return total

    def groups(self) -> list[tuple]:
        """The independent parts of the search: (model, layout, prefill, decode platform, tp)."""
        plan, out = self.p.plan, []
        for model in self.p.models:
            for layout in plan.layouts:
                pairs = [(n, n) for n in self.names] if layout == Layout.COLOCATED else \
                    [(a, b) for a in self.names for b in self.names if a == b or plan.mixed]
                out += [(model, layout, a, b, tp) for a, b in pairs for tp in plan.tp]
        return out

    # -- the walks (generators: yield a candidate, receive its row) --------------------------
    def walk(self, g: tuple, prune: bool = True) -> Walk:
        """The candidates of group ``g`` in search order, each sent back its row.
        ``prune``: skip what cannot meet the SLO (off: the search without pruning, for tests)."""
        model, layout, a, b, tp = g
        top, exhaustive = self.p.plan.max_replicas, self.p.plan.exhaustive
        if layout == Layout.COLOCATED:
            for n in range(1, top + 1):
                row = yield self.at(model, layout, a, a, tp, 0, n)
                if _stop(row, exhaustive) or (prune and not exhaustive and _unfixable(row)):
                    return
            return
        na, nb = self.nodes_per_replica(a, tp), self.nodes_per_replica(b, tp)
        pairs = sorted(((i, j) for i in range(1, top + 1) for j in range(1, top + 1)),
                       key=lambda ij: (ij[0] * na + ij[1] * nb, ij))
        ttft_missed: set[int] = set()        # prefill replica counts whose TTFT misses the limit
        limit = self.p.plan.slo.limits().get("ttft.p99_s")
        for i, j in pairs:
            if i in ttft_missed:
                continue
            row = yield self.at(model, layout, a, b, tp, i, j)
            if _stop(row, exhaustive) or (prune and not exhaustive and _unfixable(row)):
                return
            if prune and not exhaustive and limit is not None and not row.get("rejected") \
                    and row.get("ttft.p99_s") is not None and row["ttft.p99_s"] > limit:
                ttft_missed.add(i)

    def same_nodes(self, best: list[dict[str, Any]]) -> Iterator[tuple[tuple, Candidate]]:
        """For each smallest disaggregated fleet, the co-located fleets on the same number of
        nodes on its prefill platform and on its decode platform: ((model, nodes, platform,
        tp), candidate)."""
        for r in best:
            if r["layout"] != "disaggregated":
                continue
            for name in dict.fromkeys((r["prefill"], r["decode"])):
                n = r["nodes"] // self.nodes_per_replica(name, r["tp"])
                if n >= 1:
                    yield ((r["model"], r["nodes"], name, r["tp"]),
                           self.at(r["model"], Layout.COLOCATED, name, name, r["tp"], 0, n))


def _stop(row, exhaustive: bool) -> bool:
    return row["binding"].startswith("memory (weights") or (row["met"] and not exhaustive)


def _unfixable(row) -> bool:
    """A fleet rejected requests (or measured none): a replica rejects a request whose whole
    sequence cannot fit its KV pool (rdusim.serve.continuous ``add``), which is the same on
    every replica of the platform, so every replica count of the group rejects the same
    requests and misses the SLO too."""
    return row["binding"].startswith("memory (requests")


def binding(m: dict[str, Any], limits: dict[str, float]) -> tuple[bool, str, float]:
    """Met?, the binding constraint (largest value / limit), and that ratio (a value not
    there or not finite -- stored as None -- misses its limit)."""
    if m.get("oom"):
        return False, "memory (weights do not fit)", math.inf
    if m.get("rejected", 0) or m.get("measured", 0) == 0:
        return False, "memory (requests rejected)", math.inf
    ratios = {k: (math.inf if m.get(k) is None else m[k] / v) for k, v in limits.items()}
    key = max(ratios, key=lambda k: ratios[k])
    return ratios[key] <= 1.0, key, ratios[key]


ROW_KEYS = ("requests_per_s", "kv_transfer.s_mean", "kv_transfer.bytes_mean", "rejected", "prefix_cache.hit_rate",
            "prefix_cache.saved_prefill_tokens")


def row_of(space: Space, c: Candidate, m: dict[str, Any]) -> dict[str, Any]:
    """A configuration's row from its simulated metrics ``m``."""
    limits = space.p.plan.slo.limits()
    met, bind, ratio = binding(m, limits)
    ci = [k.replace("_s", f"_ci_{end}_s") for end in ("lo", "hi") for k in limits]
    return {"model": c.model, **c.label(), "nodes": space.nodes(c), "usd_per_hour": space.usd_per_hour(c),
            "met": met, "binding": bind, "ratio": ratio,
            **{k: m[k] for k in list(limits) + list(ROW_KEYS) + ci if k in m}}


def cheapest(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model, the priced fleet meeting the SLO with the lowest price per hour."""
    out = {}
    for r in rows:
        if r["met"] and r["usd_per_hour"] is not None and (
                r["model"] not in out or r["usd_per_hour"] < out[r["model"]]["usd_per_hour"]):
            out[r["model"]] = r
    return list(out.values())


def name_of(r) -> str:
    if r["layout"] == "colocated":
        return f"{r['prefill']} x{r['decode_replicas']} (tp{r['tp']})"
    return (f"prefill {r['prefill']} x{r['prefill_replicas']} + decode {r['decode']} x{r['decode_replicas']} "
            f"(tp{r['tp']})")


def smallest(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model and platform (a disaggregated fleet: its prefill+decode pair), the met
    configuration with the fewest nodes (ties: lowest p99 ratio); with the constraint that
    bound the last smaller configuration simulated (what forced the extra replica)."""
    best: dict[tuple, dict] = {}
    for r in rows:
        key = (r["model"], r["layout"], r["prefill"], r["decode"])
        if r["met"] and (key not in best or (r["nodes"], r["ratio"]) < (best[key]["nodes"], best[key]["ratio"])):
            best[key] = r
    out = []
    for key, r in best.items():
        fails = [x for x in rows if (x["model"], x["layout"], x["prefill"], x["decode"]) == key and not x["met"]
                 and x["tp"] == r["tp"]]
        out.append(dict(r, forced_by=fails[-1]["binding"] if fails else "none (the smallest fleet tried meets it)"))
    return out


def same_nodes_rows(best: list[dict[str, Any]], coloc: dict[tuple, dict], limits) -> list[dict[str, Any]]:
    """Each smallest disaggregated fleet against co-located serving on the same number of
    nodes (``coloc``: (model, nodes, platform, tp) -> the co-located row)."""
    out = []
    for r in best:
        if r["layout"] != "disaggregated":
            continue
        for name in dict.fromkeys((r["prefill"], r["decode"])):
            c = coloc.get((r["model"], r["nodes"], name, r["tp"]))
            if c is None:
                continue
            out.append({"model": r["model"], "disaggregated": name_of(r), "colocated": name_of(c),
                        "nodes": r["nodes"], **{f"disaggregated.{k}": r.get(k) for k in limits},
                        **{f"colocated.{k}": c.get(k) for k in limits},
                        "disaggregated.met": r["met"], "colocated.met": c["met"]})
    return out
