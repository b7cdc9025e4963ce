"""Serving a Composition of Experts under load (workload kind serve with a ``coe:`` block).

Metric keys as the single-model serving study (``serve.P.coe.<name>`` for the main
load point, ``serve.P.coe.load<i>.<name>`` for the rates of ``rates_per_s``), plus
``hit_rate``, ``switches_per_request``, and per platform ``serve.P.expert_slots``,
``serve.P.switch_s`` (one expert copied in), ``serve.P.kv_blocks``.
"""

from __future__ import annotations

import dataclasses
import math
from contextlib import nullcontext
from types import SimpleNamespace
from typing import Any

import numpy as np

from rdusim.config.workload import LoadedWorkload
from rdusim.config.workload_serve import Batching, CoeBatching, ServeWorkload
from rdusim.engine.coe.capacity import node_capacity
from rdusim.engine.coe.routing import hottest_first, route
from rdusim.engine.coe.switching import lone_switch_s
from rdusim.cache import RunCache, active_cache
from rdusim.engine.stepper import StepModel
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase
from rdusim.parallel import fork_map, using_jobs
from rdusim.progress import Progress
from rdusim.results import RunResult, plain
from rdusim.rows.serve import ServeRow, point_rows
from rdusim.serve.arrivals import Stream
from rdusim.serve.coe import CoeSetup, run_coe
from rdusim.serve.adapters import ExpertCosts
from rdusim.serve.multi import MultiSetup, run_multi
from rdusim.serve.guard import ClockOutOfRange, check_times, on_platform
from rdusim.serve.metrics import Slo, replicated, summarize
from rdusim.serve.platform import hbm_usable_per_device, with_scheduler, workspace_bytes
from rdusim.serve.trace import request_spans
from rdusim.serve_cost import coe_serve_energy
from rdusim.studies.part import StudyPart
from rdusim.studies.serve_streams import Streams, capacity, model_named as _model, request_records
from rdusim.studies.serve_adapters import adapter_setup
from rdusim.cost import serve_rent_rows  # $/Mtoken at each load point

KV_TOKENS_PER_SEQUENCE = 2048   # HBM kept for KV per running sequence (assumed: half a 4k context)


def routed(stream: Stream, spec: ServeWorkload, seed: int, point: int, rep: int = 0, *, routing=None,
           count: int = 0, key: int = 7) -> Stream:
    """Experts of requests the trace did not route, drawn by the routing distribution
    (replication ``rep`` > 0 draws its own; ``routing``/``count``/``key``: another population's, the adapters')."""
    routing, count = (routing, count) if routing is not None else (spec.coe.routing, spec.coe.count)
    need = [i for i, a in enumerate(stream.arrivals) if a.expert < 0]
    if not need:
        return stream
    ids = route(routing, count, len(need), np.random.default_rng([seed, point, key] + ([rep] if rep else [])))
    arr = list(stream.arrivals)
    for i, e in zip(need, ids.tolist()):
        arr[i] = dataclasses.replace(arr[i], expert=int(e))
    return Stream(tuple(arr), stream.rejected, stream.truncated)


def run_study(loaded: LoadedWorkload, *, trace: bool = False) -> RunResult:
    spec: ServeWorkload = loaded.spec
    coe, ad = spec.coe, spec.adapters
    expert_cfg = _model(coe.experts if coe else spec.model, loaded.file, "coe.experts" if coe else "model")
    router_cfg = _model(coe.router, loaded.file, "coe.router") if coe else None
    cache = active_cache()
    streams = Streams(loaded, expert_cfg.max_position_embeddings, coe.count if coe else ad.count)
    raw = streams.at(streams.main_rate, spec.requests, 0, spec.duration_s)
    # the populations served: the CoE's experts, and LoRA adapters over the base model
    # (their own draws of who each request goes to: rng key 7 the CoE's, 11 the adapters')
    populations = ([("coe", {})] if coe else []) + (
        [("adapters", {"routing": ad.popularity, "count": ad.count, "key": 11})] if ad else [])
    reps = 1
    prepared = []        # per population: its routing, streams and hottest-first order
    for mode, kw in populations:
        def route_of(stream, _spec, seed, point, rep=0, kw=kw):
            return routed(stream, _spec, seed, point, rep, **kw)
        main = route_of(raw, spec, loaded.seed, 0)
        sweep = {i: route_of(streams.at(r, spec.sweep_requests, i + 1), spec, loaded.seed, i + 1)
                 for i, r in enumerate(spec.rates_per_s)}
        # independent replications of the main point (a trace: the same arrivals, their own
        # routing; none when the trace routes every request itself)
        again = [route_of(streams.at(streams.main_rate, spec.requests, 0, spec.duration_s, rep=r), spec,
                          loaded.seed, 0, r) for r in range(1, spec.replications)]
        if streams.trace is not None and not any(a.expert < 0 for a in raw.arrivals):
            again = []
        reps = max(reps, 1 + len(again))
        dist, count = (coe.routing, coe.count) if mode == "coe" else (ad.popularity, ad.count)
        hottest = tuple(hottest_first(dist, count, tuple(int(a.expert) for a in main.arrivals)))
        prepared.append((mode, route_of, main, sweep, again, hottest))

    def one(task: tuple[int, str]) -> StudyPart:
        """One population on one platform (its rows, records, OOM reason and, traced, its log)."""
        mode, route_of, main, sweep, again, hottest = prepared[task[0]]
        name = task[1]
        part = StudyPart()
        rows = part.rows
        dep = with_scheduler(loaded.deployment(name, expert_cfg), spec.scheduler)
        if mode == "coe":
            router_dep = with_scheduler(loaded.deployment(name, router_cfg), spec.scheduler)
            setup = _setup(name, dep, router_dep, coe, hottest, cache, rows, part.oom_reasons)
        else:
            setup = adapter_setup(name, dep, ad, hottest, cache, rows, part.oom_reasons, loaded.file)
        if setup is None:
            bar.advance(1 + len(sweep))
            return part
        rates: list[float] = []       # achieved, main point then the sweep's
        for i, stream in [(None, main), *sweep.items()]:
            log, m = _point(setup, stream, spec, name)
            if i is None and again:
                m = replicated([m] + [_point(setup, s, spec, name)[1] for s in again])
            m.update(streams.rate_metric(streams.main_rate if i is None else spec.rates_per_s[i]))
            rows += point_rows(name, mode, i, m)
            if "requests_per_s" in m:
                rates.append(m["requests_per_s"])
            if i is None:
                part.records += _records(name, log, spec, mode)
                if trace:
                    part.events.append((name, mode, log))
            bar.advance()
        if spec.capacity.traffic_per_s:
            rows += _capacity(name, setup, streams, spec, loaded.seed, max(rates), mode, route_of)
        return part

    # every population on every platform is independent: on the run's processes
    # (rdusim.parallel), merged in order; a trace keeps every log, so a traced run is one process
    tasks = [(m, name) for m in range(len(prepared)) for name in spec.platforms]
    with Progress(len(tasks) * (1 + len(spec.rates_per_s)), f"serve {spec.name}") as bar:
        with using_jobs(1) if trace else nullcontext():
            parts = fork_map(one, tasks, reported=lambda i, part: bar.advance(1 + len(spec.rates_per_s)))
    merged = StudyPart.merged(parts)
    rows: list[ServeRow] = merged.rows
    records: list[dict[str, Any]] = merged.records
    runs = merged.events
    oom_reasons: dict[str, str] = merged.oom_reasons
    rows += serve_rent_rows(rows, loaded)
    return RunResult(workload_name=spec.name, kind="serve", resolved=dict(loaded.raw),
                     archs={n: plain(a) for n, a in loaded.archs.items()}, seed=loaded.seed, rows=tuple(rows),
                     records=tuple(records),
                     extra={"model": expert_cfg.name, "platforms": list(spec.platforms),
                            "batching": [m for m, _ in populations],
                            "rates_per_s": list(spec.rates_per_s), "slo": plain(spec.slo), "coe": plain(coe),
                            **({"adapters": plain(ad)} if ad else {}),
                            "replications": reps, "oom_reasons": oom_reasons},
                     trace=request_spans(runs, spec.trace_requests) if trace else ())


def serve_once(setup, arrivals, warmup: int = 0):
    """A run of ``setup``: run to completion per expert batch (CoeSetup), or continuous
    batching across experts or adapters (MultiSetup)."""
    if isinstance(setup, MultiSetup):
        return run_multi(setup, arrivals, warmup)[:2]
    return run_coe(setup, arrivals, warmup)


def _point(setup, stream: Stream, spec: ServeWorkload, name: str):
    try:
        log, ec = serve_once(setup, stream.arrivals, spec.warmup_requests)
        check_times("CoE serving", log.seqs)
    except ClockOutOfRange as exc:
        raise on_platform(exc, name)
    log.truncated = stream.truncated
    m = summarize(log, spec.warmup_requests, Slo(spec.slo.ttft_s, spec.slo.tpot_s), len(stream.arrivals) + stream.rejected)
    m["hit_rate"] = ec.hits / max(1, ec.hits + ec.misses)
    if setup.router is not None:        # a CoE (adapters: not modelled)
        expert = setup.expert if isinstance(setup, CoeSetup) else setup.costs.expert
        m.update(coe_serve_energy(setup.router, expert, setup.model_bytes, log, ec.misses))
    return log, m


def _capacity(name: str, setup, streams: Streams, spec: ServeWorkload, seed: int,
              sat: float, mode: str = "coe", route=None) -> list[ServeRow]:
    """Highest sustainable replay rate of this CoE per node, and nodes for the traffic
    (the single-model study's search on the CoE server)."""
    route = route or routed
    node = SimpleNamespace(serve=lambda _, arrivals, warmup=0: serve_once(setup, arrivals, warmup)[0], name=name)
    routed_streams = SimpleNamespace(at=lambda rate, n, point: route(streams.at(rate, n, point), spec, seed, point))
    best = capacity(node, Batching.CONTINUOUS, routed_streams, spec, sat)
    return point_rows(name, mode, None, {
        "capacity.max_rate_per_s": best,
        "capacity.nodes_for_traffic": math.ceil(spec.capacity.traffic_per_s / best) if best > 0 else math.inf})


def _setup(name, dep, router_dep, coe, hottest, cache: RunCache, rows: list, oom_reasons: dict) -> CoeSetup | None:
    sched = dep.stack.scheduler
    tp = dep.tp
    expert_bytes = build_model_graph(dep.model, Phase.DECODE, 1, 1).param_bytes
    router_bytes = build_model_graph(router_dep.model, Phase.DECODE, 1, 1).param_bytes
    kv_bytes = sched.max_sequences * dep.model.kv_cache_bytes_per_rank(KV_TOKENS_PER_SEQUENCE, tp) * tp
    reserve = sched.memory_reserve_fraction * hbm_usable_per_device(dep) * tp
    work = workspace_bytes(dep, cache) * tp
    cap = node_capacity(dep.arch, tp, expert_bytes, router_bytes + kv_bytes + reserve + work)
    block = dep.model.kv_cache_bytes_per_rank(sched.kv_block_tokens, tp)
    reason = cap.fits(coe.count)
    rows += point_rows(name, None, None, {"expert_slots": cap.hbm_experts, "max_experts": cap.max_experts,
                                          "oom": int(reason is not None)})
    if reason is not None:
        oom_reasons[name] = f"{name} tp{tp}: {reason}"
        return None
    switch = lone_switch_s(dep.arch, tp, expert_bytes)
    blocks = int(kv_bytes / tp // block)
    rows += point_rows(name, None, None, {"switch_s": switch, "kv_blocks": blocks})
    # a model switch: the stack's model-load work and the programs of the expert's steps (the
    # router's are the same shape), taken at batch 1 and the first context anchor
    expert, at = StepModel(dep, cache), dep.execution.context_bucket_tokens
    programs = expert.prefill(1, at).program_load_s + expert.engine_step(Phase.DECODE, 1, at).program_load_s
    if coe.batching == CoeBatching.CONTINUOUS:   # resident experts share the running batch
        return MultiSetup(ExpertCosts(expert), slots=max(1, min(cap.hbm_experts, coe.count)),
                          cache_policy=coe.cache.policy, switch_s=switch, per_step=sched.models_per_step,
                          max_sequences=sched.max_sequences, max_batched_tokens=sched.max_batched_tokens,
                          kv_block_tokens=sched.kv_block_tokens, kv_blocks=blocks,
                          request_s=dep.stack.costs.per_request_s,
                          model_load_s=programs, session_s=dep.stack.costs.per_model_load_s,
                          router=StepModel(router_dep, cache), hottest=hottest, model_bytes=expert_bytes)
    return CoeSetup(router=StepModel(router_dep, cache), expert=expert, experts=coe.count,
                    slots=max(1, min(cap.hbm_experts, coe.count)), cache_policy=coe.cache.policy,
                    prefetch=coe.cache.prefetch, switch_s=switch, policy=coe.policy, max_wait_s=coe.max_wait_s,
                    max_sequences=sched.max_sequences, kv_block_tokens=sched.kv_block_tokens, kv_blocks=blocks,
                    request_s=dep.stack.costs.per_request_s,
                    model_load_s=dep.stack.costs.per_model_load_s + programs, hottest=hottest,
                    model_bytes=expert_bytes)


def _records(name: str, log, spec: ServeWorkload, mode: str = "coe") -> list[dict[str, Any]]:
    return request_records(name, mode, log, spec)
