"""The serving study's printed tables: latency percentiles, throughput, goodput, capacity."""

from __future__ import annotations

import math

from rdusim.results import RunResult


def _ms(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{1e3 * v:.1f}"


def _num(v, fmt=".2f") -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def summary(result: RunResult) -> str:
    m = result.metrics
    ex = result.extra
    plats, modes = ex.get("platforms", list(result.archs)), ex.get("batching", ["continuous"])
    slo = ex.get("slo", {})
    lines = [f"Serving under load: {result.workload_name} (seed {result.seed}); SLO TTFT <= {slo.get('ttft_s')} s, "
             f"TPOT <= {slo.get('tpot_s')} s", ""]
    head = (f"  {'platform':<10} {'batching':<10} {'rate/s':>7} {'TTFT p50':>9} {'p99 [95% CI]':>22} {'TPOT p50':>9}"
            f" {'p99':>7} {'E2E p99':>9} {'req/s':>7} {'tok/s':>8} {'goodput':>8} {'KV occ':>7} {'rej':>5}")
    rows = [("", "main")] + [(f".load{i}", f"load{i}") for i in range(len(ex.get("rates_per_s", [])))]
    lines.append("Latency (ms) and throughput per load point")
    lines.append(head)
    for p in plats:
        if m.get(f"serve.{p}.oom"):
            lines.append(f"  {p:<10} OOM: the weights leave no HBM for a KV block")
            continue
        for mode in modes:
            for suffix, _ in rows:
                k = f"serve.{p}.{mode}{suffix}"
                if f"{k}.ttft.p50_s" not in m:
                    continue
                ci = f"{_ms(m.get(k + '.ttft.p99_s'))} [{_ms(m.get(k + '.ttft.p99_ci_lo_s'))},{_ms(m.get(k + '.ttft.p99_ci_hi_s'))}]"
                lines.append(f"  {p:<10} {mode:<10} {_num(m.get(k + '.rate_per_s')):>7} {_ms(m.get(k + '.ttft.p50_s')):>9}"
                             f" {ci:>22} {_ms(m.get(k + '.tpot.p50_s')):>9} {_ms(m.get(k + '.tpot.p99_s')):>7}"
                             f" {_ms(m.get(k + '.e2e.p99_s')):>9} {_num(m.get(k + '.requests_per_s')):>7}"
                             f" {_num(m.get(k + '.output_tokens_per_s'), '.0f'):>8} {_num(m.get(k + '.goodput_per_s')):>8}"
                             f" {_num(m.get(k + '.kv_occupancy.mean')):>7} {_num(m.get(k + '.rejected'), '.0f'):>5}")
    caps = [(p, mode) for p in plats for mode in modes if f"serve.{p}.{mode}.capacity.max_rate_per_s" in m]
    if caps:
        lines += ["", "Capacity under the SLO (per node)"]
        for p, mode in caps:
            k = f"serve.{p}.{mode}.capacity"
            lines.append(f"  {p:<10} {mode:<10} max rate {_num(m[k + '.max_rate_per_s'])} req/s, "
                         f"nodes for the traffic: {_num(m.get(k + '.nodes_for_traffic'), '.0f')}")
    return "\n".join(lines)
