"""The CoE section: Table-2-style speedups, latency components, the expert-count
sweep, capacity and footprint, and the figures of plots_coe."""

from __future__ import annotations

from typing import Optional

from rdusim.report import plots_coe
from rdusim.report.document import Section, Table
from rdusim.report.keys import CoeView
from rdusim.rows.base import CI_HIGH, CI_LOW


def speedup_table(v: CoeView) -> Optional[Table]:
    rows = []
    for (a, c, s), d in sorted(v.speedups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        rows.append((a, c, s.label, d.get("overall"), _ci(d, "overall"), d.get("expert"), _ci(d, "expert"),
                     v.switch_speedups.get((a, c))))
    for (a, c), sw in v.switch_speedups.items():
        if not any(r[0] == a and r[1] == c for r in rows):
            rows.append((a, c, "-", None, None, None, None, sw))
    if not rows:
        return None
    return Table("coe_speedups", "Speedup of one node over another (paper Table 2)",
                 ("platform", "over", "scenario", "overall speedup (x)", "overall 95% CI",
                  "expert-only speedup (x)", "expert-only 95% CI", "model switching speedup (x)"), tuple(rows),
                 "speedup = latency of the second platform / latency of the first: the mean of per-replication "
                 "ratios over independent routings, with its 95% confidence interval (- : one routing, no interval).")


def _ci(d, part: str) -> str:
    low, high = d.get(part + CI_LOW), d.get(part + CI_HIGH)
    return "-" if low is None or high is None else f"{low:.3g}-{high:.3g}"


def components_table(v: CoeView) -> Optional[Table]:
    rows = []
    for s in v.scenario_list():
        for p in v.platforms:
            d = v.scenarios.get((p, s))
            if d:
                oom = d.get("oom")
                rows.append((p, s.label, d.get("latency_s"), d.get("router_s"), d.get("switch_s"),
                             d.get("expert_s"), None if d.get("hit_rate") is None else 100 * d["hit_rate"],
                             None if oom is None else bool(oom)))
    if not rows:
        return None
    return Table("coe_latency", "Latency per batch and its components",
                 ("platform", "scenario", "latency (s)", "router (s)", "switch (s)", "expert (s)",
                  "cache hit rate (%)", "OOM"), tuple(rows))


def sweep_tables(v: CoeView) -> list[Table]:
    tables = []
    for s in sorted({s for _, s in v.sweep}):
        plats = [p for p in v.platforms if (p, s) in v.sweep]
        counts = sorted({n for p in plats for n in v.sweep[(p, s)]})
        rows = []
        for n in counts:
            row = [n]
            for p in plats:
                d = v.sweep[(p, s)].get(n, {})
                row.append("OOM" if d.get("oom") else d.get("latency_s"))
            rows.append(tuple(row))
        tables.append(Table(f"coe_sweep_bs{s.bs}_tok{s.tok}", f"Latency vs number of experts, {s.label}",
                            ("experts",) + tuple(f"{p} latency (s)" for p in plats), tuple(rows)))
    return tables


def capacity_table(v: CoeView) -> Optional[Table]:
    rows = [(p, d.get("max_experts"), d.get("hbm_experts")) for p in v.platforms
            if (d := v.capacity.get(p))]
    if not rows:
        return None
    return Table("coe_capacity", "Experts one node can host",
                 ("platform", "max experts per node", "experts in HBM beside router and KV cache"), tuple(rows))


def footprint_table(v: CoeView) -> Optional[Table]:
    plats = [p for p in v.platforms if v.footprint.get(p)]
    if not plats:
        return None
    counts = sorted({n for p in plats for n in v.footprint[p]})
    rows = tuple((n,) + tuple(v.footprint[p].get(n) for p in plats) for n in counts)
    return Table("coe_footprint", "Nodes needed to serve N experts at the all-in-HBM latency",
                 ("experts",) + tuple(f"{p} nodes" for p in plats), rows)


def build(v: CoeView) -> Optional[Section]:
    if v.empty:
        return None
    tables = [t for t in (speedup_table(v), components_table(v)) if t is not None]
    tables += sweep_tables(v)
    tables += [t for t in (capacity_table(v), footprint_table(v)) if t is not None]
    figures, notes = plots_coe.all_figures(v)
    return Section("Composition of Experts", "Router, expert switching and expert execution per platform; "
                   "platforms: " + ", ".join(v.platforms) + ".", tuple(tables), tuple(figures), tuple(notes))
