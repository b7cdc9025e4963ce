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

from rdusim.config.limits import MAX_SIM_TIME_S
from rdusim.config.workload import LoadedWorkload
from rdusim.config.workload_serve import ArrivalProcess, Batching, LengthKind, ServeWorkload
from rdusim.cache import active_cache, digest
from rdusim.errors import InputError
from rdusim.parallel import fork_map, using_jobs
from rdusim.progress import Progress
from rdusim.results import RunResult, plain
from rdusim.rows.serve import ServeRow, point_rows
from rdusim.serve.arrivals import Stream
from rdusim.serve.guard import ClockOutOfRange
from rdusim.serve.metrics import replicated
from rdusim.serve.platform import ServePlatform, with_scheduler
from rdusim.serve.trace import request_spans
from rdusim.studies.part import StudyPart
from rdusim.studies.serve_coe import run_study as run_coe_study
from rdusim.studies.serve_streams import (Streams, capacity, model_named as _model,  # noqa: F401  (re-exported)
                                         request_records as _records, serve_point)
from rdusim.studies.serve_roofline import roofline_metrics
from rdusim.studies.serve_summary import summary  # noqa: F401  (the study's table)
from rdusim.cost import serve_rent_rows  # $/Mtoken at each load point


def run(loaded: LoadedWorkload, *, trace: bool = False, wants=None) -> RunResult:   # noqa: ARG001 (wants: every part is kept)
    try:
        return _run(loaded, trace)
    except ClockOutOfRange as exc:     # the inputs took the simulated clock where it cannot go
        raise InputError(loaded.file, "", f"steps and gaps between arrivals the simulated clock can follow "
                         f"(a run spans at most {MAX_SIM_TIME_S:g} s)", str(exc)) from None


def _run(loaded: LoadedWorkload, trace: bool) -> RunResult:
    spec: ServeWorkload = loaded.spec
    if spec.coe is not None or spec.adapters is not None:
        return run_coe_study(loaded, trace=trace)
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
