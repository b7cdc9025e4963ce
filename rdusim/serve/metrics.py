"""Statistics of a serving run: latency percentiles with 95% confidence intervals,
throughput, goodput under an SLO, occupancy and queue length over time, Little's law.

Throughput counts the measured requests finishing between the 10th and 90th percentile
of their finish times over that span (a steady-state departure rate: under a stable
load it is the arrival rate, overloaded it is what the node can serve).
Requests are measured after the warm-up (the first ``warmup`` arrivals are served but
not counted). Latencies of consecutive requests are correlated (they share queues), so
confidence intervals come from batch means: the measured requests, in arrival order,
are cut into ``BATCHES`` consecutive batches; the statistic's 95% interval is its
value over all requests +- t(0.975, BATCHES-1) x the standard error of the per-batch
values. No random numbers are drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rdusim.serve.server import RunLog

BATCHES = 10
T975 = {9: 2.262, 19: 2.093, 4: 2.776}   # Student t quantiles for the batch counts used
PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class Slo:
    ttft_s: float
    tpot_s: float


def request_arrays(log: RunLog, warmup: int) -> dict[str, np.ndarray]:
    """Per measured, completed request: arrival, queue, ttft, tpot, e2e, output tokens."""
    qs = [q for q in log.seqs[warmup:] if q.finish_s == q.finish_s]
    arr = lambda f: np.fromiter((f(q) for q in qs), dtype=float, count=len(qs))  # noqa: E731
    a = arr(lambda q: q.arrival_s)
    out = {"arrival": a, "queue": arr(lambda q: q.start_s) - a, "ttft": arr(lambda q: q.first_token_s) - a,
           "e2e": arr(lambda q: q.finish_s) - a, "finish": arr(lambda q: q.finish_s),
           "output": arr(lambda q: q.output), "switches": arr(lambda q: q.switches)}
    out["tpot"] = np.where(out["output"] > 1, (out["e2e"] - out["ttft"]) / np.maximum(out["output"] - 1, 1), np.nan)
    return out


def ci(values: np.ndarray, stat) -> tuple[float, float, float]:
    """Statistic over all values, and its 95% batch-means interval (nan when too few)."""
    v = values[~np.isnan(values)]
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    point = float(stat(v))
    if len(v) < 2 * BATCHES:
        return point, math.nan, math.nan
    per = np.array([stat(b) for b in np.array_split(v, BATCHES)])
    half = T975[BATCHES - 1] * float(per.std(ddof=1)) / math.sqrt(BATCHES)
    return point, point - half, point + half


def summarize(log: RunLog, warmup: int, slo: Slo, arrivals: int) -> dict[str, float]:
    """Flat metrics of one run (keys relative to serve.<platform>.<batching>[.load<i>])."""
    r = request_arrays(log, warmup)
    m: dict[str, float] = {}
    completed_all = sum(1 for q in log.seqs if q.finish_s == q.finish_s)
    m["arrivals"] = arrivals
    m["completed"] = completed_all
    m["rejected"] = arrivals - len(log.seqs) + log.rejected_kv
    m["rejected_kv"] = log.rejected_kv
    m["truncated"] = log.truncated
    m["measured"] = len(r["e2e"])
    m["preemptions"] = log.preemptions
    m["swap_s"] = log.swap_s
    m["steps"] = log.steps
    m["kv_blocks"] = log.kv_blocks
    for name in ("ttft", "tpot", "e2e", "queue"):
        v = r[name]
        point, lo, hi = ci(v, np.mean)
        m[f"{name}.mean_s"], m[f"{name}.mean_ci_lo_s"], m[f"{name}.mean_ci_hi_s"] = point, lo, hi
        for p in PERCENTILES:
            point, lo, hi = ci(v, lambda x, p=p: np.percentile(x, p))
            m[f"{name}.p{p}_s"], m[f"{name}.p{p}_ci_lo_s"], m[f"{name}.p{p}_ci_hi_s"] = point, lo, hi
    n = len(r["e2e"])
    if n:
        good = (r["ttft"] <= slo.ttft_s) & ((r["output"] <= 1) | (r["tpot"] <= slo.tpot_s))
        # departures between the 10th and 90th percentile of finish times: a rate free of
        # the run's start-up and of the tail draining after the last arrival
        # (from the first departure in the window, exclusive, to the last, inclusive)
        lo, hi = np.percentile(r["finish"], [10, 90]) if n >= 10 else (r["finish"].min(), r["finish"].max())
        window = r["finish"][(r["finish"] >= lo) & (r["finish"] <= hi)]
        f0, f1 = float(window.min()), float(window.max())
        inside = (r["finish"] > f0) & (r["finish"] <= f1)
        span = max(f1 - f0, 1e-12)
        m["requests_per_s"] = float(inside.sum()) / span
        m["output_tokens_per_s"] = float(r["output"][inside].sum()) / span
        m["goodput_per_s"] = float((good & inside).sum()) / span
        m["slo_attainment"] = float(good.mean())
        m["offered_rate_per_s"] = (n - 1) / max(float(r["arrival"][-1] - r["arrival"][0]), 1e-12) if n > 1 else math.nan
        m["switches_per_request"] = float(r["switches"].mean())
        quarter = max(1, n // 4)           # is the queue growing? last vs first quarter of requests
        m["queue.growth_s"] = float(r["queue"][-quarter:].mean() - r["queue"][:quarter].mean())
        m.update(_little(r))
    m.update(_over_time(log))
    return m


def _little(r: dict[str, np.ndarray]) -> dict[str, float]:
    """Little's law over the window from the first to the last measured arrival: the
    time-average number in system L (integrated from arrival and departure events, the
    measured requests only) against lambda x W, with W's batch-means interval."""
    a, f = r["arrival"], r["finish"]
    t0, t1 = float(a.min()), float(a.max())
    if t1 <= t0:
        return {}
    # integral over [t0, t1] of N(t) = sum over requests of their time in system inside the window
    inside = np.clip(np.minimum(f, t1) - np.maximum(a, t0), 0, None).sum()
    L = float(inside) / (t1 - t0)
    lam = (len(a) - 1) / (t1 - t0)
    w, lo, hi = ci(r["e2e"], np.mean)
    return {"little.in_system_mean": L, "little.arrival_rate_per_s": lam, "little.rate_x_time": lam * w,
            "little.rate_x_time_ci_lo": lam * lo, "little.rate_x_time_ci_hi": lam * hi}


def _over_time(log: RunLog) -> dict[str, float]:
    if len(log.t) < 2:
        return {}
    t = np.asarray(log.t)
    dt = np.diff(t)
    span = t[-1] - t[0]
    if span <= 0:
        return {}
    kv = np.asarray(log.kv[:-1], dtype=float) / max(log.kv_blocks, 1)
    q = np.asarray(log.queue[:-1], dtype=float)
    return {"kv_occupancy.mean": float((kv * dt).sum() / span), "kv_occupancy.max": float(np.max(log.kv) / max(log.kv_blocks, 1)),
            "queue_len.mean": float((q * dt).sum() / span), "queue_len.max": float(max(log.queue))}


def timeseries(log: RunLog, points: int = 400) -> list[dict[str, float]]:
    """KV occupancy, queue and running over time, thinned to about ``points`` samples."""
    n = len(log.t)
    idx = np.unique(np.linspace(0, n - 1, min(points, n)).astype(int)) if n else []
    return [{"t_s": log.t[i], "kv_occupancy": log.kv[i] / max(log.kv_blocks, 1), "queue": log.queue[i],
             "running": log.running[i]} for i in idx]
