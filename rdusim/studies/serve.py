"""Serving under load: a request stream served on each platform by its stack's scheduler.

Per platform P and batching mode M (continuous / static), metric keys
``serve.P.M.<name>`` for the workload's load point and ``serve.P.M.load<i>.<name>``
for each rate of ``rates_per_s`` (throughput-latency curves); ``<name>`` is one of
  ttft|tpot|e2e|queue|tbt . mean_s|p50_s|p90_s|p99_s  (main point: the mean over ``replications``
  independent runs, + _ci_lo_s / _ci_hi_s: its 95% Student-t interval over them)
  requests_per_s, output_tokens_per_s, goodput_per_s, slo_attainment, offered_rate_per_s,
  arrivals, completed, rejected, rejected_kv, truncated, measured, preemptions, swap_s, steps,
  kv_blocks, kv_occupancy.mean|max, queue_len.mean|max, queue.growth_s (last minus first quarter's
  mean queueing time), switches_per_request, hit_rate (CoE),
  little.in_system_mean, little.arrival_rate_per_s, little.rate_x_time;
``serve.P.M.load<i>.rate_per_s`` is the offered rate of the point. Capacity:
``serve.P.M.capacity.max_rate_per_s`` (highest rate whose SLO attainment reaches the
target while the queue does not grow) and ``serve.P.M.capacity.nodes_for_traffic``
(``capacity.traffic_per_s`` / that rate, rounded up). Throughput (requests_per_s,
output_tokens_per_s, goodput_per_s) counts the measured requests completed over the span
from the first measured arrival to the last completion (rdusim.serve.metrics). ``serve.P.kv_blocks`` and
``serve.P.weight_bytes_per_device`` describe the memory. Records: one row per measured
request of the main load point (``row: request``; written to the run folder's requests.csv,
rdusim.requests_file), KV occupancy / queue samples over time (``row: timeseries``).
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any

import numpy as np

from rdusim.config.files import MAX_TRACE_BYTES, check_input_file
from rdusim.config.limits import MAX_SIM_TIME_S
from rdusim.config.model import ModelConfig, load_model
from rdusim.config.workload import LoadedWorkload, resolve_path
from rdusim.config.workload_serve import ArrivalProcess, Batching, LengthKind, ServeWorkload
from rdusim.cache import active_cache, digest
from rdusim.errors import InputError
from rdusim.parallel import fork_map, using_jobs
from rdusim.progress import Progress
from rdusim.results import RunResult, plain
from rdusim.rows.serve import ServeRow, point_rows
from rdusim.serve.arrivals import (Stream, StreamTooLong, Trace, fit_context, read_trace, replay, synthetic,
                                   with_prefixes)
from rdusim.serve.guard import ClockOutOfRange, check_times, on_platform
from rdusim.serve.metrics import Slo, replicated, summarize, timeseries
from rdusim.serve.platform import ServePlatform, with_scheduler
from rdusim.serve.trace import request_spans
from rdusim.studies.part import StudyPart
from rdusim.studies.serve_roofline import roofline_metrics
from rdusim.studies.serve_summary import summary  # noqa: F401  (the study's table)


PREFIX_STREAM = 1    # the prefix draws' own generator: [seed, point, rep, PREFIX_STREAM]
QUEUE_GROWTH = 0.25   # a sustainable rate: queueing grows by at most this share of the TTFT SLO over a probe


class Streams:
    """The request stream at any rate: same seed per load point on every platform."""

    def __init__(self, loaded: LoadedWorkload, max_context: int, experts: int = 0):
        self.spec: ServeWorkload = loaded.spec
        self.file = loaded.file
        self.seed = loaded.seed
        self.max_context = max_context
        self.trace: Trace | None = None
        a = self.spec.arrivals
        if a.process == ArrivalProcess.TRACE:
            path = resolve_path(a.trace, loaded.file)
            check_input_file(path, "a trace CSV file", MAX_TRACE_BYTES, file=loaded.file, key="arrivals.trace")
            self.trace = read_trace(path, a.format, experts)
            if self.trace.mean_rate_per_s is None:     # one row, or all at one instant: no rate to scale
                for key, given in (("rates_per_s", list(self.spec.rates_per_s)),
                                   ("capacity.traffic_per_s", self.spec.capacity.traffic_per_s)):
                    if given:
                        raise InputError(loaded.file, key, "none for a trace whose arrivals all fall at one "
                                         f"instant ({self.trace.file}: it has no recorded rate to replay at "
                                         "other rates; it runs as given)", given)

    @property
    def main_rate(self) -> float | None:
        """The main point's offered rate (None: a trace spanning no time, replayed as given)."""
        a = self.spec.arrivals
        if self.trace is None:
            return a.rate_per_s
        m = self.trace.mean_rate_per_s
        return a.time_scale * m if m is not None else None

    def at(self, rate: float | None, count: int, point: int, duration_s: float = 0.0, rep: int = 0) -> Stream:
        """The stream of load point ``point``; replication ``rep`` > 0 draws its own (a trace
        replays the same arrivals in every replication)."""
        spec = self.spec
        total = count + spec.warmup_requests
        try:
            if self.trace is not None:
                m = self.trace.mean_rate_per_s
                arr = replay(self.trace, rate / m if m is not None else 1.0, total, duration_s)
            else:
                rng = np.random.default_rng([self.seed, point] + ([rep] if rep else []))
                arr = synthetic(spec.arrivals.process, rate, spec.arrivals.cv, spec.prompt_tokens,
                                spec.output_tokens, total, duration_s, rng)
                pf = spec.prefix
                if pf.share > 0 and pf.tokens > 0:
                    arr = with_prefixes(arr, pf.share, pf.tokens, pf.prefixes,
                                        np.random.default_rng([self.seed, point, rep, PREFIX_STREAM]))
        except StreamTooLong as exc:
            raise InputError(self.file, self._key(point), exc.expected, exc.found) from None
        if len(arr) <= spec.warmup_requests:
            what = f"the trace's {len(arr)}" if self.trace is not None else f"the {len(arr)} arriving within duration_s"
            raise InputError(self.file, "warmup_requests", f"fewer than {what} requests (the first warmup_requests "
                             "are served but not measured: nothing would be measured)", spec.warmup_requests)
        return fit_context(arr, self.max_context, spec.too_long)

    def _key(self, point: int) -> str:
        """The workload key that sets load point ``point`` (0: main, i + 1: rates_per_s[i])."""
        if point == 0:
            return "arrivals.time_scale" if self.trace is not None else \
                "duration_s" if self.spec.duration_s > 0 else "arrivals.rate_per_s"
        if point <= len(self.spec.rates_per_s):
            return f"rates_per_s[{point - 1}]"
        return "capacity.traffic_per_s"

    @staticmethod
    def rate_metric(rate: float | None) -> dict[str, float]:
        """``rate_per_s`` of a point, absent where a trace has no rate."""
        return {} if rate is None else {"rate_per_s": rate}


def serve_point(plat: ServePlatform, batching: Batching, stream: Stream, spec: ServeWorkload):
    try:
        log = plat.serve(batching, stream.arrivals, spec.warmup_requests)
        check_times(f"{batching.value} batching", log.seqs)
    except ClockOutOfRange as exc:
        raise on_platform(exc, getattr(plat, "name", "?"))
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

    # below this rate a probe's requests would span more than the simulated clock resolves;
    # they arrive alone there, so the probe at the floor stands for it
    floor = (cap.requests + spec.warmup_requests) / MAX_SIM_TIME_S

    def ok(rate: float) -> bool:
        m = serve_point(plat, batching, streams.at(max(rate, floor), cap.requests, 10_000), spec)[1]
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
    try:
        return _run(loaded, trace)
    except ClockOutOfRange as exc:     # the inputs took the simulated clock where it cannot go
        raise InputError(loaded.file, "", f"steps and gaps between arrivals the simulated clock can follow "
                         f"(a run spans at most {MAX_SIM_TIME_S:g} s)", str(exc)) from None


def _run(loaded: LoadedWorkload, trace: bool) -> RunResult:
    spec: ServeWorkload = loaded.spec
    if spec.coe is not None or spec.adapters is not None:
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
    oom_reasons: dict[str, str] = {}
    main = streams.at(streams.main_rate, spec.requests, 0, spec.duration_s)
    # independent replications of the main point (a replayed trace has one realisation: none)
    again = [] if streams.trace is not None else [streams.at(streams.main_rate, spec.requests, 0, spec.duration_s, rep=r)
                                                  for r in range(1, spec.replications)]
    sweep = {i: streams.at(r, spec.sweep_requests, i + 1) for i, r in enumerate(spec.rates_per_s)}
    if Batching.CONTINUOUS in spec.batching:
        check_prompt_budget(loaded, plats, [main, *sweep.values()])
    per_mode = 1 + len(sweep) + (1 if spec.capacity.traffic_per_s else 0)
    work = len(plats) * len(spec.batching) * per_mode
    with Progress(work, f"serve {spec.name}") as bar:
        # the platforms and their batching modes are independent: on the run's processes
        # (rdusim.parallel), merged in order; a trace keeps every log, so a traced run is done
        # in one process
        def one(task: tuple[str, int]) -> StudyPart:
            name, m = task
            return _platform(name, plats[name], spec, streams, main, again, sweep, trace, cache, bar, m)

        tasks = [(name, m) for name in plats for m in range(len(spec.batching))]
        with using_jobs(1) if trace else nullcontext():
            parts = fork_map(one, tasks, reported=lambda i, part: bar.advance(per_mode))
    merged = StudyPart.merged(parts)
    rows += merged.rows
    records += merged.records
    events += merged.events
    oom_reasons.update(merged.oom_reasons)
    # engine steps simulated: the distinct ones over every part (the same on any --jobs)
    misses = len(set().union(*(p.keyed["steps_simulated"] for p in parts)))
    rows.append(ServeRow(None, None, None, "step_cache.misses", misses))
    from rdusim.cost import serve_rent_rows      # $/Mtoken at each load point
    rows += serve_rent_rows(rows, loaded)
    return RunResult(workload_name=spec.name, kind="serve", resolved=dict(loaded.raw),
                     archs={n: plain(a) for n, a in loaded.archs.items()}, seed=loaded.seed, rows=tuple(rows),
                     records=tuple(records),
                     extra={"model": cfg.name, "platforms": list(spec.platforms),
                            "batching": [b.value for b in spec.batching], "rates_per_s": list(spec.rates_per_s),
                            "replications": spec.replications,
                            "slo": plain(spec.slo),
                            "scheduler": {n: plain(p.scheduler) for n, p in plats.items()},
                            "stacks": {n: p.dep.stack.name for n, p in plats.items()}, "oom_reasons": oom_reasons},
                     trace=request_spans(events, spec.trace_requests) if trace else ())


def _platform(name: str, plat: ServePlatform, spec: ServeWorkload, streams: Streams, main: Stream,
              again: list[Stream], sweep: dict[int, Stream], trace: bool, cache, bar, m: int) -> StudyPart:
    """One platform's rows, records and trace logs of its ``m``-th batching mode (the first
    also the platform's own rows); ``keyed["steps_simulated"]``: the engine steps it
    simulated (their keys' digests)."""
    part = StudyPart()
    before = cache.keys("step")
    try:
        _platform_mode(part, name, plat, spec, streams, main, again, sweep, trace, bar, m)
    finally:
        part.keyed["steps_simulated"] = {digest("step", k) for k in cache.keys("step") - before}
    return part


def _platform_mode(part: StudyPart, name: str, plat: ServePlatform, spec: ServeWorkload, streams: Streams,
                   main: Stream, again: list[Stream], sweep: dict[int, Stream], trace: bool, bar, m: int) -> None:
    rows, records = part.rows, part.records
    fits = plat.kv_blocks >= 1
    if m == 0:
        rows += point_rows(name, None, None, {
            "kv_blocks": plat.kv_blocks, "weight_bytes_per_device": plat.weight_bytes,
            "kv_block_bytes_per_device": plat.block_bytes, "workspace_bytes_per_device": plat.workspace_bytes,
            "oom": 0 if fits else 1})
        rows += point_rows(name, None, None, roofline_metrics(plat, main.arrivals))
    if not fits:
        if m == 0:
            part.oom_reasons[name] = f"{name} tp{plat.dep.tp}: {plat.oom_reason()}"
        bar.advance(1 + len(sweep) + (1 if spec.capacity.traffic_per_s else 0))
        return
    for mode in spec.batching[m:m + 1]:
        log, m = serve_point(plat, mode, main, spec)
        m = replicated([m] + [serve_point(plat, mode, s, spec)[1] for s in again])
        rows += point_rows(name, mode.value, None, {**m, **streams.rate_metric(streams.main_rate)})
        records += _records(name, mode.value, log, spec)
        if trace:
            part.events.append((name, mode.value, log))
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


def check_prompt_budget(loaded: LoadedWorkload, plats: dict[str, ServePlatform], streams: list[Stream]) -> None:
    """Continuous batching without chunked prefill prefills a prompt in one step, so the
    longest prompt must fit the step's token budget (vLLM refuses max_num_batched_tokens
    below the longest sequence when chunked prefill is off). Synthetic prompts: the longest
    the length distribution can draw (within the model's context); a trace: its longest."""
    spec: ServeWorkload = loaded.spec
    if spec.arrivals.process == ArrivalProcess.TRACE:
        longest = max((a.prompt_tokens for s in streams for a in s.arrivals), default=0)
        where = f"the longest prompt of {spec.arrivals.trace}"
    else:
        p, o = spec.prompt_tokens, spec.output_tokens
        most = p.value if p.distribution == LengthKind.FIXED else p.max
        least_out = o.value if o.distribution == LengthKind.FIXED else o.min
        longest = min(most, max(1, next(iter(plats.values())).max_context - least_out)) if plats else most
        where = "the longest prompt prompt_tokens can draw"
    for name, plat in plats.items():
        sched = plat.scheduler
        if sched.chunked_prefill or longest <= sched.max_batched_tokens:
            continue
        key = "scheduler.max_batched_tokens" if spec.scheduler.max_batched_tokens is not None else \
            f"stack.{name}.scheduler.max_batched_tokens"
        raise InputError(loaded.file, key, f"at least {where} ({longest} tokens) on platform {name}, or "
                         "scheduler.chunked_prefill: true (without chunked prefill a prompt is prefilled in one "
                         "step of at most max_batched_tokens tokens; vLLM refuses this configuration)",
                         sched.max_batched_tokens)


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
