"""The serving study's printed tables: latency percentiles, throughput, goodput, capacity."""

from __future__ import annotations

import math

from rdusim.report.oom import reason_of
from rdusim.results import RunResult
from rdusim.rows import serve as serve_rows
from rdusim.rows.base import by_identity


def _ms(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{1e3 * v:.1f}"


def _num(v, fmt=".2f") -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def summary(result: RunResult) -> str:
    t = by_identity(serve_rows.from_metrics(result.metrics))    # (platform, mode, load) -> {metric: value}
    ex = result.extra
    plats, modes = ex.get("platforms", list(result.archs)), ex.get("batching", ["continuous"])
    slo = ex.get("slo", {})
    lines = [f"Serving under load: {result.workload_name} (seed {result.seed}); SLO TTFT <= {slo.get('ttft_s')} s, "
             f"TPOT <= {slo.get('tpot_s')} s", ""]
    head = (f"  {'platform':<10} {'batching':<10} {'point':<5} {'rate/s':>7} {'TTFT p50':>9} {'p99 [95% CI]':>22}"
            f" {'TPOT p50':>9}"
            f" {'p99':>7} {'TBT p99':>8} {'E2E p99':>9} {'req/s':>7} {'tok/s':>8} {'goodput':>8} {'KV occ':>7} {'rej':>5}"
            f" {'$/Mtok':>7} {'J/tok':>6} {'W/dev':>6}")
    loads = [None] + list(range(len(ex.get("rates_per_s", []))))
    reps = ex.get("replications", 1)
    lines.append("Latency (ms) and throughput per load point" + (
        f"; the main point's latencies: the mean of {reps} independent replications, with a 95% interval"
        if reps > 1 else ""))
    lines.append(head)
    for p in plats:
        if t.get((p, None, None), {}).get("oom"):
            lines.append(f"  {p:<10} OOM: {reason_of(f'serve.{p}', ex.get('oom_reasons', {}))}")
            continue
        for mode in modes:
            for load in loads:
                d = t.get((p, mode, load), {})
                if "ttft.p50_s" not in d:
                    continue
                ci = _ms(d.get('ttft.p99_s')) + (f" [{_ms(d['ttft.p99_ci_lo_s'])},{_ms(d['ttft.p99_ci_hi_s'])}]"
                                                 if "ttft.p99_ci_lo_s" in d else "")
                point = "main" if load is None else "sweep"
                lines.append(f"  {p:<10} {mode:<10} {point:<5} {_num(d.get('rate_per_s')):>7}"
                             f" {_ms(d.get('ttft.p50_s')):>9}"
                             f" {ci:>22} {_ms(d.get('tpot.p50_s')):>9} {_ms(d.get('tpot.p99_s')):>7}"
                             f" {_ms(d.get('tbt.p99_s')):>8}"
                             f" {_ms(d.get('e2e.p99_s')):>9} {_num(d.get('requests_per_s')):>7}"
                             f" {_num(d.get('output_tokens_per_s'), '.0f'):>8} {_num(d.get('goodput_per_s')):>8}"
                             f" {_num(d.get('kv_occupancy.mean')):>7} {_num(d.get('rejected'), '.0f'):>5}"
                             f" {_num(d.get('usd_per_mtoken')):>7} {_num(d.get('energy_j_per_token')):>6}"
                             f" {_num(d.get('power_w_per_device'), '.0f'):>6}")
    lines.append("  point: main = the workload's arrivals (its rate, `requests` of them); sweep = one run per rate of "
                 "rates_per_s (`sweep_requests` each), so a sweep rate equal to the main one is a separate run")
    caps = [(p, mode) for p in plats for mode in modes if "capacity.max_rate_per_s" in t.get((p, mode, None), {})]
    if caps:
        lines += ["", "Capacity under the SLO (per node)"]
        for p, mode in caps:
            d = t[(p, mode, None)]
            lines.append(f"  {p:<10} {mode:<10} max rate {_num(d['capacity.max_rate_per_s'])} req/s, "
                         f"nodes for the traffic: {_num(d.get('capacity.nodes_for_traffic'), '.0f')}"
                         + (f", ${_num(d['capacity.usd_per_mtoken'])}/Mtoken there" if "capacity.usd_per_mtoken" in d
                            else ""))
    return "\n".join(lines)
