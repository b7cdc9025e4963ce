"""Serving under load: a request stream served on each platform by its stack's scheduler.

Per platform P and batching mode M (continuous / static), metric keys
``serve.P.M.<name>`` for the workload's load point and ``serve.P.M.load<i>.<name>``
for each rate of ``rates_per_s`` (throughput-latency curves); ``<name>`` is one of
  ttft|tpot|e2e|queue . mean_s|p50_s|p90_s|p99_s  (+ _ci_lo_s / _ci_hi_s: 95% batch-means CI)
  requests_per_s, output_tokens_per_s, goodput_per_s, slo_attainment, offered_rate_per_s,
  arrivals, completed, rejected, rejected_kv, truncated, measured, preemptions, swap_s, steps,
  kv_blocks, kv_occupancy.mean|max, queue_len.mean|max, queue.growth_s (last minus first quarter's
  mean queueing time), switches_per_request, hit_rate (CoE),
  little.in_system_mean, little.arrival_rate_per_s, little.rate_x_time(_ci_lo|_ci_hi);
``serve.P.M.load<i>.rate_per_s`` is the offered rate of the point. Capacity:
``serve.P.M.capacity.max_rate_per_s`` (highest rate whose SLO attainment reaches the
target while the queue does not grow) and ``serve.P.M.capacity.nodes_for_traffic``
(``capacity.traffic_per_s`` / that rate, rounded up). Throughput (requests_per_s,
output_tokens_per_s, goodput_per_s) is the steady-state departure rate between the
10th and 90th percentile of the measured requests' finish times. ``serve.P.kv_blocks`` and
``serve.P.weight_bytes_per_device`` describe the memory. Records: one row per measured
request of the main load point (``row: request``), KV occupancy / queue samples over
time (``row: timeseries``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rdusim.config.model import ModelConfig, load_model
from rdusim.config.workload import LoadedWorkload, resolve_path
from rdusim.config.workload_serve import ArrivalProcess, Batching, ServeWorkload
from rdusim.cache import active_cache
from rdusim.errors import InputError
from rdusim.progress import Progress
from rdusim.results import RunResult, plain
from rdusim.rows.serve import ServeRow, point_rows
from rdusim.serve.arrivals import Stream, Trace, fit_context, read_trace, replay, synthetic
from rdusim.serve.metrics import Slo, summarize, timeseries
from rdusim.serve.platform import ServePlatform, with_scheduler
from rdusim.serve.trace import request_spans
from rdusim.studies.serve_summary import summary  # noqa: F401  (the study's table)


QUEUE_GROWTH = 0.25   # a sustainable rate: queueing grows by at most this share of the TTFT SLO over a probe


class Streams:
    """The request stream at any rate: same seed per load point on every platform."""

    def __init__(self, loaded: LoadedWorkload, max_context: int, experts: int = 0):
        self.spec: ServeWorkload = loaded.spec
        self.seed = loaded.seed
        self.max_context = max_context
        self.trace: Trace | None = None
        a = self.spec.arrivals
        if a.process == ArrivalProcess.TRACE:
            self.trace = read_trace(resolve_path(a.trace, loaded.file), a.format, experts)

    @property
    def main_rate(self) -> float:
        a = self.spec.arrivals
        return a.time_scale * self.trace.mean_rate_per_s if self.trace is not None else a.rate_per_s

    def at(self, rate: float, count: int, point: int, duration_s: float = 0.0) -> Stream:
        spec = self.spec
        total = count + spec.warmup_requests
        if self.trace is not None:
            arr = replay(self.trace, rate / self.trace.mean_rate_per_s, total, duration_s)
        else:
            rng = np.random.default_rng([self.seed, point])
            arr = synthetic(spec.arrivals.process, rate, spec.arrivals.cv, spec.prompt_tokens, spec.output_tokens,
                            total, duration_s, rng)
        return fit_context(arr, self.max_context, spec.too_long)


def serve_point(plat: ServePlatform, batching: Batching, stream: Stream, spec: ServeWorkload):
    log = plat.serve(batching, stream.arrivals)
    log.truncated = stream.truncated
    arrivals = len(stream.arrivals) + stream.rejected
    m = summarize(log, spec.warmup_requests, Slo(spec.slo.ttft_s, spec.slo.tpot_s), arrivals)
    from rdusim.serve_cost import serve_energy     # joules and power of the run (rdusim.energy)
    m.update(serve_energy(plat, log))
    return log, m


def capacity(plat: ServePlatform, batching: Batching, streams: Streams, spec: ServeWorkload,
             saturated_rate: float) -> float:
    """Highest rate (bisection) that is sustainable: the SLO attainment reaches the target
    and the queue does not grow (a short probe of an overloaded node can still meet the SLO
    on its first requests): the mean queueing time of the probe's last quarter of requests
    exceeds its first quarter's by at most QUEUE_GROWTH x the TTFT SLO."""
    cap = spec.capacity

    def ok(rate: float) -> bool:
        m = serve_point(plat, batching, streams.at(rate, cap.requests, 10_000), spec)[1]
        return (m.get("slo_attainment", 0.0) >= cap.attainment
                and m.get("queue.growth_s", math.inf) <= QUEUE_GROWTH * spec.slo.ttft_s)

    lo, hi = 0.0, max(saturated_rate, 1e-3) * 1.5
    while ok(hi):
        lo, hi = hi, 2 * hi
        if hi > 64 * max(saturated_rate, 1e-3):
            return lo
    for _ in range(cap.iterations):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def run(loaded: LoadedWorkload, *, trace: bool = False, wants=None) -> RunResult:   # noqa: ARG001 (wants: every part is kept)
    spec: ServeWorkload = loaded.spec
    if spec.coe is not None:
        from rdusim.studies.serve_coe import run_study
        return run_study(loaded, trace=trace)
    cfg = _model(spec.model, loaded.file, "model")
    cache = active_cache()
    plats = {n: ServePlatform.build(n, with_scheduler(loaded.deployment(n, cfg), spec.scheduler), cache)
             for n in spec.platforms}
    streams = Streams(loaded, cfg.max_position_embeddings)
    rows: list[ServeRow] = []
    records: list[dict[str, Any]] = []
    events: list = []
    main = streams.at(streams.main_rate, spec.requests, 0, spec.duration_s)
    sweep = {i: streams.at(r, spec.sweep_requests, i + 1) for i, r in enumerate(spec.rates_per_s)}
    work = len(plats) * len(spec.batching) * (1 + len(sweep) + (1 if spec.capacity.traffic_per_s else 0))
    with Progress(work, f"serve {spec.name}") as bar:
        for pi, (name, plat) in enumerate(plats.items()):
            fits = plat.kv_blocks >= 1
            rows += point_rows(name, None, None, {
                "kv_blocks": plat.kv_blocks, "weight_bytes_per_device": plat.weight_bytes,
                "kv_block_bytes_per_device": plat.block_bytes, "workspace_bytes_per_device": plat.workspace_bytes,
                "oom": 0 if fits else 1})
            if not fits:
                bar.advance(work // len(plats))
                continue
            for mode in spec.batching:
                log, m = serve_point(plat, mode, main, spec)
                rows += point_rows(name, mode.value, None, {**m, "rate_per_s": streams.main_rate})
                records += _records(name, mode.value, log, spec)
                if trace:
                    events.append((name, mode.value, log))
                bar.advance()
                rates = [m.get("requests_per_s", 0.0)]       # achieved: main point, then the sweep's
                for i, stream in sweep.items():
                    _, m = serve_point(plat, mode, stream, spec)
                    rows += point_rows(name, mode.value, i, {**m, "rate_per_s": spec.rates_per_s[i]})
                    rates.append(m.get("requests_per_s", 0.0))
                    bar.advance()
                if spec.capacity.traffic_per_s:
                    best = capacity(plat, mode, streams, spec, max(rates[1:] + rates[:1]))
                    rows += point_rows(name, mode.value, None, {
                        "capacity.max_rate_per_s": best,
                        # tokens per second served there (the main stream's mean output per request)
                        "capacity.output_tokens_per_s": best * sum(q.output for q in log.seqs) / max(1, len(log.seqs)),
                        "capacity.nodes_for_traffic": (math.ceil(spec.capacity.traffic_per_s / best)
                                                       if best > 0 else math.inf)})
                    bar.advance()
    rows.append(ServeRow(None, None, None, "step_cache.misses", cache.misses["step"]))
    from rdusim.cost import serve_rent_rows      # $/Mtoken at each load point
    rows += serve_rent_rows(rows, loaded)
    return RunResult(workload_name=spec.name, kind="serve", resolved=dict(loaded.raw),
                     archs={n: plain(a) for n, a in loaded.archs.items()}, seed=loaded.seed, rows=tuple(rows),
                     records=tuple(records),
                     extra={"model": cfg.name, "platforms": list(spec.platforms),
                            "batching": [b.value for b in spec.batching], "rates_per_s": list(spec.rates_per_s),
                            "slo": plain(spec.slo),
                            "scheduler": {n: plain(p.scheduler) for n, p in plats.items()},
                            "stacks": {n: p.dep.stack.name for n, p in plats.items()}},
                     trace=request_spans(events, spec.trace_requests) if trace else ())


def _records(name: str, mode: str, log, spec: ServeWorkload) -> list[dict[str, Any]]:
    rows = []
    for q in log.seqs[spec.warmup_requests:]:
        done = q.finish_s == q.finish_s
        rows.append({"row": "request", "platform": name, "batching": mode, "id": q.id,
                     "arrival_s": q.arrival_s, "prompt_tokens": q.prompt, "output_tokens": q.output,
                     "expert": q.expert, "queue_s": q.start_s - q.arrival_s if done else None,
                     "ttft_s": q.first_token_s - q.arrival_s if done else None,
                     "tpot_s": (q.finish_s - q.first_token_s) / (q.output - 1) if done and q.output > 1 else None,
                     "e2e_s": q.finish_s - q.arrival_s if done else None, "preemptions": q.preemptions,
                     "switches": q.switches, "completed": done})
    rows += [{"row": "timeseries", "platform": name, "batching": mode, **s} for s in timeseries(log)]
    return rows


def _model(name: str, file: str, key: str) -> ModelConfig:
    try:
        return load_model(str(resolve_path(name, file)) if name.endswith((".yaml", ".yml")) else name)
    except InputError as exc:
        raise InputError(file, key, exc.expected, name) from None
