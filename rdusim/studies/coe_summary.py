"""The CoE study's printed tables: Table-2-style speedups, breakdown, sweep, capacity."""

from __future__ import annotations

import re

from rdusim.results import RunResult


def _ci(m, key: str) -> str:
    low, high = m.get(key + ".ci95_low"), m.get(key + ".ci95_high")
    return "-" if low is None or high is None else f"{low:.2f}-{high:.2f}"


def summary(result: RunResult) -> str:
    m = result.metrics
    ref = result.extra.get("reference_platform", "")
    scenarios = result.extra.get("scenarios", [])
    platforms = list(result.archs)
    reps, batches = int(result.extra.get("replications", 1)), result.extra.get("batches", "?")
    lines = [f"Composition of Experts: {result.workload_name} (seed {result.seed})", ""]
    lines.append(f"Latency per CoE batch (mean over {reps} replication{'s' if reps > 1 else ''} x {batches} batches),"
                 " ms: router + switch + expert")
    lines.append(f"  {'platform':<10} {'scenario':<11} {'latency':>9} {'router':>8} {'switch':>9} {'expert':>9}"
                 f" {'switches':>8} {'hit rate':>8}")
    for p in platforms:
        for s in scenarios:
            k = f"coe.{p}.{s}"
            if m.get(f"{k}.oom"):
                lines.append(f"  {p:<10} {s:<11} {'OOM':>9}")
                continue
            lines.append(f"  {p:<10} {s:<11} {1e3 * m[k + '.latency_s']:>9.1f} {1e3 * m[k + '.router_s']:>8.1f}"
                         f" {1e3 * m[k + '.switch_s']:>9.1f} {1e3 * m[k + '.expert_s']:>9.1f}"
                         f" {m[k + '.switches_per_batch']:>8.2f} {m[k + '.hit_rate']:>8.2f}")
    spanning = [p for p in platforms if any(f"coe.{p}.{s}.router_network_s" in m for s in scenarios)]
    if spanning:
        lines += ["", "Spanning nodes (router on node 0, experts placed over the cluster's nodes, each node serving "
                      "its share at once; the critical node's switch and expert above): network us | nodes reached"]
        for p in spanning:
            cells = [f"{s} {1e6 * m[f'coe.{p}.{s}.router_network_s']:6.1f} | {m[f'coe.{p}.{s}.nodes_used']:.2f}"
                     for s in scenarios if f"coe.{p}.{s}.router_network_s" in m]
            lines.append(f"  {p:<10} " + "   ".join(cells))
    lines += ["", f"Speedup of {ref} (Table 2 style): overall | expert-only"]
    header = f"  {'vs':<10} " + " ".join(f"{s:>19}" for s in scenarios) + f" {'switch':>8}"
    lines.append(header)
    for p in platforms:
        if p == ref:
            continue
        key = f"coe.speedup.{ref}_vs_{p}"
        cells = []
        for s in scenarios:
            o, e = m.get(f"{key}.{s}.overall"), m.get(f"{key}.{s}.expert")
            cells.append(f"{o:>8.2f}x | {e:>6.2f}x" if o is not None else f"{'n/a (OOM)':>19}")
        sw = m.get(f"{key}.switch")
        lines.append(f"  {p:<10} " + " ".join(cells) + (f" {sw:>7.1f}x" if sw is not None else ""))
    if any(k.endswith(".ci95_low") for k in m if k.startswith("coe.speedup.")):
        lines += ["", f"95% confidence intervals of the speedups ({reps} independent routings, Student t"
                      " over per-replication ratios): overall | expert-only"]
        lines.append(f"  {'vs':<10} " + " ".join(f"{s:>19}" for s in scenarios))
        for p in platforms:
            if p == ref:
                continue
            key = f"coe.speedup.{ref}_vs_{p}"
            cells = [" | ".join(_ci(m, f"{key}.{s}.{part}") for part in ("overall", "expert")) for s in scenarios]
            lines.append(f"  {p:<10} " + " ".join(f"{c:>19}" for c in cells))
    lines += ["", "Capacity per node: experts in HBM beside router + KV | experts hosted at all"
              " | one expert switch (ms)"]
    for p in platforms:
        lines.append(f"  {p:<10} {int(m.get(f'coe.capacity.{p}.hbm_experts', 0)):>6} |"
                     f" {int(m.get(f'coe.capacity.{p}.max_experts', 0)):>6} |"
                     f" {1e3 * m.get(f'coe.{p}.lone_switch_s', float('nan')):>8.1f}")
    sweep = sorted({int(g) for k in m for g in re.findall(r"\.experts(\d+)\.latency_s$|\.experts(\d+)\.oom$", k)
                    for g in g if g})
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
                k = f"coe.{p}.{s}.experts{n}"
                cells.append(f"{'OOM':>10}" if m.get(f"{k}.oom") else f"{1e3 * m.get(k + '.latency_s', float('nan')):>10.1f}")
            lines.append(f"  {n:>8} " + " ".join(cells))
        placed = result.extra.get("footprint_clusters") or {p: "" for p in spanning}
        head = "Nodes needed to serve N experts near the all-in-HBM latency"
        if placed:
            where = ", ".join(f"{p} on {c}" if c else p for p, c in placed.items())
            alone = [p for p in platforms if p not in placed]
            head += (f" (experts placed over k nodes, router on node 0: {where}"
                     + (f"; {', '.join(alone)}: k nodes served alone" if alone else "") + ")")
        lines += ["", head]
        lines.append(f"  {'experts':>8} " + " ".join(f"{p:>10}" for p in platforms))
        for n in sweep:
            lines.append(f"  {n:>8} " + " ".join(
                f"{int(m[f'coe.footprint.{p}.nodes_for{n}']):>10}" if f"coe.footprint.{p}.nodes_for{n}" in m
                else f"{'-':>10}" for p in platforms))
    return "\n".join(lines)
