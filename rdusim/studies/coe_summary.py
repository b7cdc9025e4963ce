"""The CoE study's printed tables: Table-2-style speedups, breakdown, sweep, capacity."""

from __future__ import annotations

from rdusim.results import RunResult
from rdusim.rows import coe as coe_rows
from rdusim.rows.base import by_identity
from rdusim.rows.coe import (CoeCapacityRow, CoeFootprintRow, CoePlatformRow, CoePointRow, CoeSpeedupRow,
                             parse_scenario)


def _ci(ci) -> str:
    low, high = ci if ci is not None else (None, None)
    return "-" if low is None or high is None else f"{low:.2f}-{high:.2f}"


def summary(result: RunResult) -> str:
    rows = coe_rows.from_metrics(result.metrics)
    point = by_identity(rows, CoePointRow)          # (platform, batch, tokens, experts) -> {metric: value}
    speedup = by_identity(rows, CoeSpeedupRow)      # (reference, other, batch, tokens) -> {part: value}
    speedup_ci = {(r.reference, r.other, r.batch, r.tokens, r.part): r.ci for r in rows if type(r) is CoeSpeedupRow}
    capacity = by_identity(rows, CoeCapacityRow)    # (platform,) -> {metric: value}
    per_platform = by_identity(rows, CoePlatformRow)
    footprint = by_identity(rows, CoeFootprintRow)  # (platform, experts) -> {"nodes": value}
    ref = result.extra.get("reference_platform", "")
    scenarios = result.extra.get("scenarios", [])
    sc_of = {s: parse_scenario(s) or (None, None) for s in scenarios}
    platforms = list(result.archs)
    reps, batches = int(result.extra.get("replications", 1)), result.extra.get("batches", "?")
    lines = [f"Composition of Experts: {result.workload_name} (seed {result.seed})", ""]
    lines.append(f"Latency per CoE batch (mean over {reps} replication{'s' if reps > 1 else ''} x {batches} batches),"
                 " ms: router + switch + expert")
    lines.append(f"  {'platform':<10} {'scenario':<11} {'latency':>9} {'router':>8} {'switch':>9} {'expert':>9}"
                 f" {'switches':>8} {'hit rate':>8} {'$/batch':>9} {'$/Mtok':>8} {'J/tok':>6}")
    for p in platforms:
        for s in scenarios:
            d = point.get((p, *sc_of[s], None), {})
            if d.get("oom"):
                lines.append(f"  {p:<10} {s:<11} {'OOM':>9}")
                continue
            lines.append(f"  {p:<10} {s:<11} {1e3 * d['latency_s']:>9.1f} {1e3 * d['router_s']:>8.1f}"
                         f" {1e3 * d['switch_s']:>9.1f} {1e3 * d['expert_s']:>9.1f}"
                         f" {d['switches_per_batch']:>8.2f} {d['hit_rate']:>8.2f}"
                         + (f" {d['cost_usd']:>9.5f} {d['usd_per_mtoken']:>8.2f}" if "cost_usd" in d
                            else f" {'no price':>18}")
                         + (f" {d['energy_j_per_token']:>6.2f}" if "energy_j_per_token" in d else ""))
    spanning = [p for p in platforms
                if any("router_network_s" in point.get((p, *sc_of[s], None), {}) for s in scenarios)]
    if spanning:
        lines += ["", "Spanning nodes (router on node 0, experts placed over the cluster's nodes, each node serving "
                      "its share at once; the critical node's switch and expert above): network us | nodes reached"]
        for p in spanning:
            cells = [f"{s} {1e6 * d['router_network_s']:6.1f} | {d['nodes_used']:.2f}"
                     for s in scenarios if "router_network_s" in (d := point.get((p, *sc_of[s], None), {}))]
            lines.append(f"  {p:<10} " + "   ".join(cells))
    lines += ["", f"Speedup of {ref} (Table 2 style): overall | expert-only"]
    header = f"  {'vs':<10} " + " ".join(f"{s:>19}" for s in scenarios) + f" {'switch':>8}"
    lines.append(header)
    for p in platforms:
        if p == ref:
            continue
        cells = []
        for s in scenarios:
            d = speedup.get((ref, p, *sc_of[s]), {})
            o, e = d.get("overall"), d.get("expert")
            cells.append(f"{o:>8.2f}x | {e:>6.2f}x" if o is not None else f"{'n/a (OOM)':>19}")
        sw = speedup.get((ref, p, None, None), {}).get("switch")
        lines.append(f"  {p:<10} " + " ".join(cells) + (f" {sw:>7.1f}x" if sw is not None else ""))
    if any(ci is not None for ci in speedup_ci.values()):
        lines += ["", f"95% confidence intervals of the speedups ({reps} independent routings, Student t"
                      " over per-replication ratios): overall | expert-only"]
        lines.append(f"  {'vs':<10} " + " ".join(f"{s:>19}" for s in scenarios))
        for p in platforms:
            if p == ref:
                continue
            cells = [" | ".join(_ci(speedup_ci.get((ref, p, *sc_of[s], part))) for part in ("overall", "expert"))
                     for s in scenarios]
            lines.append(f"  {p:<10} " + " ".join(f"{c:>19}" for c in cells))
    lines += ["", "Capacity per node: experts in HBM beside router + KV | experts hosted at all"
              " | one expert switch (ms)"]
    for p in platforms:
        cap = capacity.get((p,), {})
        lines.append(f"  {p:<10} {int(cap.get('hbm_experts', 0)):>6} |"
                     f" {int(cap.get('max_experts', 0)):>6} |"
                     f" {1e3 * per_platform.get((p,), {}).get('lone_switch_s', float('nan')):>8.1f}")
    sweep = sorted({r.experts for r in rows if type(r) is CoePointRow and r.experts is not None
                    and r.metric in ("latency_s", "oom")})
    if sweep and scenarios:
        s = scenarios[-1] if len(scenarios) < 2 else next((x for x in scenarios if x.startswith("bs8.tok20")),
                                                             scenarios[0])
        sweep_batches = result.extra.get("sweep_batches", "?")
        same = reps == 1 and sweep_batches == batches
        lines += ["", f"Latency vs number of experts ({s}), ms" + (
            "" if same else f": one routing of {sweep_batches} batches per point, NOT the main table's"
                            f" {reps} x {batches} batches (no confidence interval)")]
        lines.append(f"  {'experts':>8} " + " ".join(f"{p:>10}" for p in platforms))
        for n in sweep:
            cells = []
            for p in platforms:
                d = point.get((p, *sc_of[s], n), {})
                cells.append(f"{'OOM':>10}" if d.get("oom") else f"{1e3 * d.get('latency_s', float('nan')):>10.1f}")
            lines.append(f"  {n:>8} " + " ".join(cells))
        placed = result.extra.get("footprint_clusters") or {p: "" for p in spanning}
        head = "Nodes needed to serve N experts near the all-in-HBM latency"
        if placed:
            where = ", ".join(f"{p} on {c}" if c else p for p, c in placed.items())
            alone = [p for p in platforms if p not in placed]
            head += (f" (experts placed over k nodes, router on node 0: {where}"
                     + (f"; {', '.join(alone)}: k nodes served alone" if alone else "") + ")")
        head += f"; one routing of {sweep_batches} batches per decision, no confidence interval"
        lines += ["", head]
        lines.append(f"  {'experts':>8} " + " ".join(f"{p:>10}" for p in platforms))
        for n in sweep:
            lines.append(f"  {n:>8} " + " ".join(
                f"{int(footprint[(p, n)]['nodes']):>10}" if (p, n) in footprint else f"{'-':>10}" for p in platforms))
    return "\n".join(lines)
