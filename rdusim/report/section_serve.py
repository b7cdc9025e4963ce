"""The serving section: latency percentiles with confidence intervals per load point,
throughput and goodput, capacity under the SLO, and the figures of plots_serve."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from rdusim.report import plots_serve
from rdusim.report.document import Section, Table
from rdusim.report.keys import num
from rdusim.rows import serve as serve_rows


def curves(metrics: Mapping[str, Any], order: Sequence[str]) -> dict[tuple[str, str], list[dict]]:
    """(platform, mode) -> one dict of metrics per load point, by offered rate."""
    points: dict[tuple[str, str, int], dict[str, float]] = {}
    for r in serve_rows.from_metrics(metrics):
        if r.load is not None and num(r.value) is not None:
            points.setdefault((r.platform, r.mode, r.load), {})[r.metric] = num(r.value)
    out: dict[tuple[str, str], list[dict]] = {}
    for (plat, mode, _), d in sorted(points.items(), key=lambda kv: (_rank(order, kv[0][0]), kv[0][1], kv[0][2])):
        if "rate_per_s" in d:
            out.setdefault((plat, mode), []).append(d)
    for pts in out.values():
        pts.sort(key=lambda d: d["rate_per_s"])
    return out


def main_points(metrics: Mapping[str, Any], order: Sequence[str]) -> dict[tuple[str, str], dict]:
    """(platform, mode) -> the metrics of the main load point."""
    out: dict[tuple[str, str], dict] = {}
    for r in serve_rows.from_metrics(metrics):
        if r.mode is not None and r.load is None and num(r.value) is not None:
            out.setdefault((r.platform, r.mode), {})[r.metric] = num(r.value)
    return dict(sorted(out.items(), key=lambda kv: (_rank(order, kv[0][0]), kv[0][1])))


def _rank(order: Sequence[str], p: str) -> int:
    return order.index(p) if p in order else len(order)


COLS = ("platform", "batching", "rate (req/s)", "arrivals", "TTFT p50 (s)", "TTFT p99 (s)", "TTFT p99 95% CI",
        "TPOT p50 (s)", "TPOT p99 (s)", "E2E p99 (s)", "throughput (req/s)", "output tok/s", "goodput (req/s)", "SLO attainment",
        "KV occupancy mean", "queue mean", "rejected", "preemptions", "$/Mtoken", "J/token", "W/device")


def _row(plat: str, mode: str, d: Mapping[str, float]) -> tuple:
    lo, hi = d.get("ttft.p99_ci_lo_s"), d.get("ttft.p99_ci_hi_s")
    ci = "-" if lo is None or hi is None else f"[{lo:.4g}, {hi:.4g}]"
    return (plat, mode, d.get("rate_per_s"), d.get("arrivals"), d.get("ttft.p50_s"), d.get("ttft.p99_s"), ci,
            d.get("tpot.p50_s"), d.get("tpot.p99_s"), d.get("e2e.p99_s"), d.get("requests_per_s"), d.get("output_tokens_per_s"),
            d.get("goodput_per_s"), d.get("slo_attainment"), d.get("kv_occupancy.mean"), d.get("queue_len.mean"),
            d.get("rejected"), d.get("preemptions"), d.get("usd_per_mtoken"), d.get("energy_j_per_token"),
            d.get("power_w_per_device"))


def build(metrics: Mapping[str, Any], records: Sequence[Mapping[str, Any]], order: Sequence[str]) -> Optional[Section]:
    mains = main_points(metrics, order)
    cv = curves(metrics, order)
    if not mains and not cv:
        return None
    tables = [Table("serve_main", "Main load point: latency percentiles, throughput, goodput",
                    COLS, tuple(_row(p, m, d) for (p, m), d in mains.items()),
                    "Percentiles over the measured requests (warm-up excluded); CI: the 95% Student-t interval "
                    "over the main point's independent replications (workload key replications). $/Mtoken: the "
                    "devices' rent over the tokens served (absent without a published price); J/token and W/device: "
                    "the run's energy (rdusim/serve_cost.py) per generated token and mean power per device.")]
    if cv:
        tables.append(Table("serve_load_sweep", "Throughput-latency curve: every load point", COLS,
                            tuple(_row(p, m, d) for (p, m), pts in cv.items() for d in pts),
                            "One run per rate of the workload's rates_per_s, each with its own sweep_requests "
                            "arrivals: a rate equal to the main point's is a separate, shorter run (the table above "
                            "has the main point)."))
    caps = [(p, m, d.get("capacity.max_rate_per_s"), d.get("capacity.nodes_for_traffic"))
            for (p, m), d in mains.items() if "capacity.max_rate_per_s" in d]
    if caps:
        tables.append(Table("serve_capacity", "Capacity under the SLO",
                            ("platform", "batching", "highest sustainable rate per node (req/s)",
                             "nodes for the traffic"), tuple(caps)))
    ttft: dict[tuple[str, str], list[float]] = {}
    series: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        key = (str(r.get("platform")), str(r.get("batching")))
        if r.get("row") == "request" and num(r.get("ttft_s")) is not None:
            ttft.setdefault(key, []).append(r["ttft_s"])
        elif r.get("row") == "timeseries":
            series.setdefault(key, []).append(r)
    figures, notes = [], []
    for fig, what in ((plots_serve.latency_vs_load(cv), "latency against load (needs rates_per_s)"),
                      (plots_serve.throughput_vs_ttft(cv), "throughput against p99 TTFT (needs rates_per_s)"),
                      (plots_serve.ttft_cdf(ttft), "the TTFT CDF (needs request records)"),
                      (plots_serve.occupancy(series), "KV occupancy over time (needs timeseries records)")):
        if fig is None:
            notes.append(f"No figure of {what}.")
        else:
            figures.append(fig)
    return Section("Serving under load", "Requests arriving over time, served by each platform's stack scheduler.",
                   tuple(tables), tuple(figures), tuple(notes))
