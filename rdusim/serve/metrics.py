"""Statistics of a serving run: latency percentiles, time between tokens, throughput,
goodput under an SLO, occupancy and queue length over time, Little's law.

Requests are measured after the warm-up (the first ``warmup`` arrivals are served but not
counted). Per run: TTFT, TPOT, end-to-end and queueing time of every measured request
(mean, p50, p90, p99), and the time between tokens (TBT) over every token of every
measured request after its first (a gap per token: a decode step, or a stall while other
requests' prompts ran). Throughput is the measured requests completed over the span from
the first measured arrival to the last measured completion (so it is never 0 when
requests completed and never above the offered rate, the measured requests over the span
of their arrivals). Queue length and KV occupancy are time averages over the run, from
its first arrival to its last completion (idle time included): the queue from every
request's time waiting (Little's law for the queue), the occupancy from the blocks held,
integrated over time.

Confidence intervals come from independent replications (:func:`replicated`): each
statistic's 95% interval is the Student-t interval over its values in R runs of
independent arrival streams, never from one correlated run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rdusim.serve.server import RunLog
from rdusim.student_t import mean_ci

PERCENTILES = (50, 90, 99)
LATENCIES = ("ttft", "tpot", "e2e", "queue", "tbt")


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


def weighted_percentile(values: np.ndarray, weights: np.ndarray, p: float) -> float:
    """The ``p``-th percentile of values each counted ``weights`` times (the smallest value
    with at least p% of the weight at or below it)."""
    return weighted_percentiles(values, weights, (p,))[0]


def weighted_percentiles(values: np.ndarray, weights: np.ndarray, ps: Sequence[float]) -> list[float]:
    """:func:`weighted_percentile` at each of ``ps``, sorting once."""
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    ranked = values[order]
    return [float(ranked[min(int(np.searchsorted(cum, p / 100.0 * cum[-1], side="left")), len(order) - 1)])
            for p in ps]


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
        v = r[name][~np.isnan(r[name])]
        if len(v):
            m[f"{name}.mean_s"] = float(v.mean())
            for p in PERCENTILES:
                m[f"{name}.p{p}_s"] = float(np.percentile(v, p))
    gaps, counts = log.tbt()
    if len(gaps):
        m["tbt.mean_s"] = float((gaps * counts).sum() / counts.sum())
        for p, v in zip(PERCENTILES, weighted_percentiles(gaps, counts, PERCENTILES)):
            m[f"tbt.p{p}_s"] = v
    n = len(r["e2e"])
    if n:
        good = (r["ttft"] <= slo.ttft_s) & ((r["output"] <= 1) | (r["tpot"] <= slo.tpot_s))
        # completions over the span from the first measured arrival to the last completion:
        # > 0 once a request completed, and at most the offered rate below (its last
        # completion comes after the last arrival)
        span = float(r["finish"].max() - r["arrival"].min())
        m["requests_per_s"] = n / span
        m["output_tokens_per_s"] = float(r["output"].sum()) / span
        m["goodput_per_s"] = float(good.sum()) / span
        m["slo_attainment"] = float(good.mean())
        arrived = float(r["arrival"].max() - r["arrival"].min())
        if arrived > 0 and math.isfinite(n / arrived):   # the measured requests over their arrivals' span
            m["offered_rate_per_s"] = n / arrived
        m["switches_per_request"] = float(r["switches"].mean())
        quarter = max(1, n // 4)           # is the queue growing? last vs first quarter of requests
        m["queue.growth_s"] = float(r["queue"][-quarter:].mean() - r["queue"][:quarter].mean())
        m.update(_little(r))
    m.update(_over_time(log))
    pc = log.prefix_cache
    if pc is not None:         # prefix caching on: every admission's lookups (warm-up included)
        m["prefix_cache.queried_blocks"] = pc.queried
        m["prefix_cache.hit_blocks"] = pc.hits
        m["prefix_cache.hit_rate"] = pc.hits / pc.queried if pc.queried else 0.0
        m["prefix_cache.saved_prefill_tokens"] = pc.saved_tokens
        m["prefix_cache.evictions"] = pc.evictions
    return m


def _little(r: dict[str, np.ndarray]) -> dict[str, float]:
    """Little's law over the window from the first to the last measured arrival: the
    time-average number in system L (integrated from arrival and departure events, the
    measured requests only) against lambda x W."""
    a, f = r["arrival"], r["finish"]
    t0, t1 = float(a.min()), float(a.max())
    if t1 <= t0:
        return {}
    # integral over [t0, t1] of N(t) = sum over requests of their time in system inside the window
    inside = np.clip(np.minimum(f, t1) - np.maximum(a, t0), 0, None).sum()
    L = float(inside) / (t1 - t0)
    lam = (len(a) - 1) / (t1 - t0)
    if not (math.isfinite(L) and math.isfinite(lam)):    # arrivals a denormal span apart: no rate to state
        return {}
    return {"little.in_system_mean": L, "little.arrival_rate_per_s": lam,
            "little.rate_x_time": lam * float(r["e2e"].mean())}


def _over_time(log: RunLog) -> dict[str, float]:
    """Time averages over the run, from its first arrival to its last completion."""
    done = [q for q in log.seqs if q.finish_s == q.finish_s]
    if not done:
        return {}
    span = max(q.finish_s for q in done) - min(q.arrival_s for q in log.seqs)
    if not span > 0:
        return {}
    waited = sum(q.start_s - q.arrival_s + q.waited_s for q in log.seqs if q.start_s == q.start_s)
    out = {"kv_occupancy.mean": log.kv_area / (max(log.kv_blocks, 1) * span), "queue_len.mean": waited / span}
    if log.t:
        out["kv_occupancy.max"] = float(np.max(log.kv) / max(log.kv_blocks, 1))
        out["queue_len.max"] = float(max(log.queue))
    return out


def replicated(runs: Sequence[dict[str, float]]) -> dict[str, float]:
    """The metrics of R independent replications of a load point: every latency statistic
    (``<ttft|tpot|e2e|queue|tbt>.<mean|p50|p90|p99>_s``) is the mean of its R values, with
    its 95% Student-t interval (``..._ci_lo_s`` / ``..._ci_hi_s``; none with one replication);
    every other metric is the first replication's (the run whose requests are recorded)."""
    out = dict(runs[0])
    for name in LATENCIES:
        for stat in ["mean"] + [f"p{p}" for p in PERCENTILES]:
            key = f"{name}.{stat}_s"
            vals = [m[key] for m in runs if key in m]
            if len(vals) != len(runs):
                continue
            mean, lo, hi = mean_ci(vals)
            out[key] = mean
            if len(vals) > 1:
                out[f"{name}.{stat}_ci_lo_s"], out[f"{name}.{stat}_ci_hi_s"] = lo, hi
    return out


def timeseries(log: RunLog, points: int = 400) -> list[dict[str, float]]:
    """KV occupancy, queue and running over time, thinned to about ``points`` samples."""
    n = len(log.t)
    idx = np.unique(np.linspace(0, n - 1, min(points, n)).astype(int)) if n else []
    return [{"t_s": log.t[i], "kv_occupancy": log.kv[i] / max(log.kv_blocks, 1), "queue": log.queue[i],
             "running": log.running[i]} for i in idx]
