"""The Composition-of-Experts study: router + N experts served on each platform.

Per platform, CoE batch size B and output tokens T: route prompts, serve batches
(rdusim.engine.coe.serving), and report router / switch / expert time, hit rate and
OOM; sweep the number of experts; speedups over the reference platform; capacity and
the nodes needed to serve N experts near the all-in-HBM latency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from rdusim.config.arch_common import ArchKind
from rdusim.config.model import load_model
from rdusim.config.workload import LoadedWorkload, resolve_path
from rdusim.config.workload_coe import CoeWorkload, RoutingKind
from rdusim.config.yamlio import load_yaml
from rdusim.engine.coe.capacity import Capacity, node_capacity
from rdusim.engine.coe.routing import hottest_first, route
from rdusim.engine.coe.serving import BatchRecord, ServingSetup, serve
from rdusim.engine.coe.switching import lone_switch_s
from rdusim.errors import InputError
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase
from rdusim.progress import Progress
from rdusim.results import RunResult, plain
from rdusim.studies.coe_summary import summary  # noqa: F401  (the study's table)
from rdusim.engine.stepper import StepCache
from rdusim.studies.coe_timing import ModelTimer

TRACE_BATCHES = 4   # batches per platform written to a --trace timeline


@dataclass(frozen=True)
class Scenario:
    batch_size: int
    output_tokens: int

    @property
    def key(self) -> str:
        return f"bs{self.batch_size}.tok{self.output_tokens}"


@dataclass
class PlatformRun:
    """Everything the study needs for one platform (timers, sizes)."""

    name: str
    loaded: LoadedWorkload
    router: ModelTimer
    expert: ModelTimer
    expert_bytes: float
    router_bytes: float
    kv_per_token: float       # router + expert KV bytes per token of one sequence

    @property
    def arch(self):
        return self.loaded.archs[self.name]

    @property
    def tp(self) -> int:
        return self.loaded.spec.platforms[self.name].tp

    def capacity(self, sc: Scenario) -> Capacity:
        spec: CoeWorkload = self.loaded.spec
        kv = sc.batch_size * (spec.prompt_tokens + sc.output_tokens) * self.kv_per_token
        return node_capacity(self.arch, self.tp, self.expert_bytes, self.router_bytes + kv)

    def setup(self, sc: Scenario, experts: int, hottest: tuple[int, ...], *, slots: int | None = None) -> ServingSetup:
        spec: CoeWorkload = self.loaded.spec
        cap = self.capacity(sc)
        n_slots = min(cap.hbm_experts, experts) if slots is None else slots
        return ServingSetup(
            arch=self.arch, devices=self.tp, experts=experts, slots=max(1, n_slots),
            expert_bytes=self.expert_bytes, policy=spec.cache.policy,
            prefetch=spec.cache.prefetch and n_slots >= 2,
            router_s=lambda b: self.router.timing(b, spec.router.output_tokens).latency_s,
            expert_s=lambda n: self.expert.latency_s(n, sc.output_tokens),
            hottest=hottest)


def run(loaded: LoadedWorkload, *, trace: bool = False, simulate=None) -> RunResult:
    spec: CoeWorkload = loaded.spec
    expert_cfg = _model(spec.experts.model, loaded.file, "experts.model")
    router_cfg = _model(spec.router.model, loaded.file, "router.model")
    expert_bytes = build_model_graph(expert_cfg, Phase.DECODE, 1, 1).param_bytes
    router_bytes = build_model_graph(router_cfg, Phase.DECODE, 1, 1).param_bytes
    kv_tok = expert_cfg.kv_cache_bytes_per_token + router_cfg.kv_cache_bytes_per_token
    extra = {} if simulate is None else {"simulate": simulate}
    cache = StepCache()      # one per run: router and experts of a platform share steps when equal
    runs = {name: PlatformRun(name, loaded,
                              ModelTimer(loaded.deployment(name, router_cfg), spec.prompt_tokens, cache, **extra),
                              ModelTimer(loaded.deployment(name, expert_cfg), spec.prompt_tokens, cache, **extra),
                              expert_bytes, router_bytes, kv_tok)
            for name in spec.platforms}
    reference = spec.reference or next((n for n in runs if runs[n].arch.kind == ArchKind.RDU), next(iter(runs)))
    trace_rows = _load_trace(spec, loaded.file)
    scenarios = [Scenario(b, t) for b in spec.batch_sizes for t in spec.output_tokens]

    metrics: dict[str, float] = {}
    records: list[dict[str, Any]] = []
    oom_reasons: dict[str, str] = {}
    events: list[dict] = []
    steps = len(runs) * (len(scenarios) * (1 + len(spec.sweep_experts)) + 1)
    with Progress(steps, f"coe {spec.name}") as bar:
        for name, pr in runs.items():
            _run_platform(pr, spec, scenarios, trace_rows, metrics, records, oom_reasons,
                          events if trace else None, bar)
    _speedups(runs, reference, scenarios, metrics)
    return RunResult(
        workload_name=spec.name, kind="coe", resolved=dict(loaded.raw),
        archs={n: plain(a) for n, a in loaded.archs.items()}, seed=loaded.seed, metrics=metrics,
        records=tuple(records),
        extra={"reference_platform": reference, "oom_reasons": oom_reasons,
               "scenarios": [s.key for s in scenarios]},
        trace=tuple(_chrome(events, list(runs))))


def _run_platform(pr: PlatformRun, spec: CoeWorkload, scenarios, trace_rows, metrics, records,
                  oom_reasons, events: list | None, bar: Progress) -> None:
    """Capacity, every scenario, the expert-count sweep and the footprint of one platform."""
    name = pr.name
    cap = pr.capacity(Scenario(max(spec.batch_sizes), max(spec.output_tokens)))
    metrics[f"coe.capacity.{name}.max_experts"] = cap.max_experts
    metrics[f"coe.capacity.{name}.hbm_experts"] = cap.hbm_experts
    metrics[f"coe.{name}.expert_bytes"] = pr.expert_bytes
    metrics[f"coe.{name}.lone_switch_s"] = lone_switch_s(pr.arch, pr.tp, pr.expert_bytes)
    for sc in scenarios:
        routes = _routes(pr.loaded.seed, spec, sc, spec.experts.count, spec.warmup_batches + spec.batches, trace_rows)
        prefix = f"coe.{name}.{sc.key}"
        rows = _serve_point(pr, sc, spec.experts.count, routes, spec.warmup_batches, trace_rows,
                            metrics, prefix, oom_reasons,
                            trace=events if sc == scenarios[0] else None)
        bar.advance()
        records.extend({"platform": name, "batch_size": sc.batch_size, "output_tokens": sc.output_tokens,
                        "experts": spec.experts.count, **plain(r)} for r in rows)
        for n in spec.sweep_experts:
            sweep_routes = _routes(pr.loaded.seed, spec, sc, n, spec.warmup_batches + spec.sweep_batches, trace_rows)
            _serve_point(pr, sc, n, sweep_routes, spec.warmup_batches, trace_rows, metrics,
                         f"{prefix}.experts{n}", oom_reasons, detail=False)
            bar.advance()
    records.extend(_timing_rows(name, pr, spec))
    _footprint(pr, spec, trace_rows, metrics)
    bar.advance()


def _serve_point(pr: PlatformRun, sc: Scenario, experts: int, routes: list[np.ndarray], warmup: int,
                 trace_rows, metrics, prefix: str, oom_reasons, *, detail: bool = True,
                 trace: list | None = None) -> tuple[BatchRecord, ...]:
    spec: CoeWorkload = pr.loaded.spec
    reason = pr.capacity(sc).fits(experts)
    metrics[f"{prefix}.oom"] = int(reason is not None)
    if reason is not None:
        oom_reasons[prefix] = reason
        return ()
    hottest = tuple(hottest_first(spec.routing, experts, trace_rows))
    spans: list | None = [] if trace is not None else None
    rows = serve(pr.setup(sc, experts, hottest), routes, trace=spans)[warmup:]
    if trace is not None and spans:
        cut = rows[0].start_s + sum(r.latency_s for r in rows[:TRACE_BATCHES])
        trace.extend((pr.name, *s) for s in spans if rows[0].start_s <= s[1] < cut)
    metrics[f"{prefix}.latency_s"] = _mean(r.latency_s for r in rows)
    if detail:
        metrics[f"{prefix}.router_s"] = _mean(r.router_s for r in rows)
        metrics[f"{prefix}.switch_s"] = _mean(r.switch_s for r in rows)
        metrics[f"{prefix}.expert_s"] = _mean(r.expert_s for r in rows)
        metrics[f"{prefix}.switches_per_batch"] = _mean(r.misses for r in rows)
        metrics[f"{prefix}.bytes_copied_per_batch"] = _mean(r.bytes_copied for r in rows)
    accesses = sum(r.hits + r.misses for r in rows)
    metrics[f"{prefix}.hit_rate"] = sum(r.hits for r in rows) / accesses if accesses else 1.0
    return rows


def _routes(seed: int, spec: CoeWorkload, sc: Scenario, experts: int, batches: int,
            trace_rows) -> list[np.ndarray]:
    """Routing of every batch; depends on (run seed, batch size, experts) only, so every
    platform and token count sees the same prompts."""
    rng = np.random.default_rng([seed, sc.batch_size, experts])
    flat = route(spec.routing, experts, batches * sc.batch_size, rng, trace_rows)
    return [flat[i * sc.batch_size:(i + 1) * sc.batch_size] for i in range(batches)]


def _speedups(runs, reference: str, scenarios, metrics) -> None:
    for other in runs:
        if other == reference:
            continue
        key = f"coe.speedup.{reference}_vs_{other}"
        metrics[f"{key}.switch"] = metrics[f"coe.{other}.lone_switch_s"] / metrics[f"coe.{reference}.lone_switch_s"]
        for sc in scenarios:
            a, c = f"coe.{reference}.{sc.key}", f"coe.{other}.{sc.key}"
            if f"{a}.latency_s" in metrics and f"{c}.latency_s" in metrics:
                metrics[f"{key}.{sc.key}.overall"] = metrics[f"{c}.latency_s"] / metrics[f"{a}.latency_s"]
                metrics[f"{key}.{sc.key}.expert"] = metrics[f"{c}.expert_s"] / metrics[f"{a}.expert_s"]


def _footprint(pr: PlatformRun, spec: CoeWorkload, trace_rows, metrics) -> None:
    """Fewest nodes (experts spread evenly over them) whose batch latency is within the
    tolerance of the latency with every expert resident in HBM. Latency grows with the
    experts per node, so the search is a bisection over the node count."""
    fp = spec.footprint
    sc = Scenario(fp.batch_size, fp.output_tokens)
    batches = spec.warmup_batches + spec.sweep_batches
    cap = pr.capacity(sc)
    memo: dict[int, bool] = {}

    def near_ideal(per_node: int) -> bool:
        if per_node not in memo:
            routes = _routes(pr.loaded.seed, spec, sc, per_node, batches, trace_rows)
            hottest = tuple(hottest_first(spec.routing, per_node, trace_rows))
            real = serve(pr.setup(sc, per_node, hottest), routes)[spec.warmup_batches:]
            ideal = serve(pr.setup(sc, per_node, hottest, slots=per_node), routes)[spec.warmup_batches:]
            memo[per_node] = (_mean(r.latency_s for r in real)
                              <= (1 + fp.latency_tolerance) * _mean(r.latency_s for r in ideal))
        return memo[per_node]

    for n in sorted(set(spec.sweep_experts) | {spec.experts.count}):
        if cap.fits(1) is not None:
            continue
        lo = max(1, math.ceil(n / cap.max_experts))
        hi = fp.max_nodes
        if lo > hi or not near_ideal(math.ceil(n / hi)):
            continue
        while lo < hi:
            mid = (lo + hi) // 2
            if near_ideal(math.ceil(n / mid)):
                hi = mid
            else:
                lo = mid + 1
        metrics[f"coe.footprint.{pr.name}.nodes_for{n}"] = lo


def _timing_rows(name: str, pr: PlatformRun, spec: CoeWorkload) -> list[dict]:
    rows = []
    for role, timer, tokens in (("router", pr.router, (spec.router.output_tokens,)),
                                ("expert", pr.expert, spec.output_tokens)):
        for (batch, out), t in timer.simulated():
            if out in tokens:
                rows.append({"platform": name, "row": "model_timing", "role": role, "model": timer.model.name,
                             "batch": batch, "output_tokens": out, "ttft_s": t.ttft_s, "tpot_s": t.tpot_s,
                             "latency_s": t.latency_s, **{f"{k}_s": v for k, v in t.breakdown_s.items()}})
    return rows


def _load_trace(spec: CoeWorkload, file: str) -> tuple[int, ...]:
    if spec.routing.distribution != RoutingKind.TRACE:
        return ()
    path = resolve_path(spec.routing.trace, file)
    data = load_yaml(path)
    if not isinstance(data, list) or not data or any(isinstance(v, bool) or not isinstance(v, int) or v < 0
                                                     for v in data):
        raise InputError(str(path), "(top level)", "a non-empty YAML list of expert ids (integers >= 0)",
                         data if not isinstance(data, list) else data[:10])
    if max(data) >= spec.experts.count:
        raise InputError(str(path), "(top level)", f"expert ids below experts.count ({spec.experts.count})",
                         max(data))
    return tuple(data)


def _chrome(events: list, platforms: list[str]) -> list[dict]:
    tids = {"router": 1, "switch": 2, "expert": 3}
    out = []
    for pid, name in enumerate(platforms):
        out.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": f"{name} node"}})
        for tname, tid in tids.items():
            out.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": tname}})
    for plat, name, start, end, cat in events:
        out.append({"name": name, "ph": "X", "ts": start * 1e6, "dur": (end - start) * 1e6,
                    "pid": platforms.index(plat), "tid": tids[cat], "cat": cat, "args": {}})
    return out


def _model(name: str, file: str, key: str):
    try:
        return load_model(name)
    except InputError as exc:
        raise InputError(file, key, exc.expected, name) from None


def _mean(values) -> float:
    vals = list(values)
    return float(sum(vals) / len(vals)) if vals else math.nan
