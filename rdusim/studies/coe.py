"""The Composition-of-Experts study: router + N experts served on each platform.

Per platform, CoE batch size B and output tokens T: route prompts, serve batches
(rdusim.engine.coe.serving), and report router / switch / expert time, hit rate and
OOM; sweep the number of experts; speedups over the reference platform; capacity and
the nodes needed to serve N experts near the all-in-HBM latency.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any


from rdusim.config.model import load_model
from rdusim.config.workload import LoadedWorkload
from rdusim.config.workload_coe import CoeWorkload
from rdusim.engine.coe.capacity import Capacity, node_capacity
from rdusim.engine.coe.batches import BatchTables
from rdusim.engine.coe.serving import ServingSetup, sequential_replications, serve_table
from rdusim.engine.evaluation import Evaluation, current
from rdusim.studies import coe_nodes
from rdusim.studies.coe_routes import Routings, load_trace
from rdusim.engine.coe.switching import lone_switch_s
from rdusim.errors import InputError
from rdusim.memory import activation_workspace_bytes, kv_bytes_per_rank, weight_bytes_per_rank
from rdusim.parallel import fork_map
from rdusim.progress import Progress
from rdusim.results import RunResult, plain
from rdusim.rows.coe import (CoeCapacityRow, CoeFootprintRow, CoePlatformRow, CoePointRow, CoeRow, CoeRunRow,
                             CoeSpeedupRow, scenario_label)
from rdusim.studies.coe_stats import mean_and_ci
from rdusim.studies.part import StudyPart
from rdusim.studies.coe_summary import summary  # noqa: F401  (the study's table)
from rdusim.cache import active_cache
from rdusim.engine.inference import simulate_inference
from rdusim.studies.coe_timing import ModelTimer
from rdusim.config.formats import for_machine  # formats.native_compute: per machine
from rdusim.cost import rent_rows
from rdusim.coe_cost import coe_batch_energy  # joules per CoE batch, per replication
from rdusim.config.formats import with_checked_formats

TRACE_BATCHES = 4   # batches per platform written to a --trace timeline


@dataclass(frozen=True)
class Scenario:
    batch_size: int
    output_tokens: int

    @property
    def key(self) -> str:
        return scenario_label(self.batch_size, self.output_tokens)


@dataclass
class PlatformRun:
    """Everything the study needs for one platform (timers, sizes)."""

    name: str
    loaded: LoadedWorkload
    router: ModelTimer
    expert: ModelTimer
    expert_bytes: float
    router_bytes: float
    routings: Routings
    _capacities: dict = field(default_factory=dict)
    _timers: dict = field(default_factory=dict)
    coe_cluster: Any = None        # rdusim.studies.coe_nodes.CoeCluster: the platform spans a cluster's nodes
    footprint_cluster: Any = None  # ... its footprint places experts over that cluster's nodes (footprint.clusters)

    @property
    def arch(self):
        return self.loaded.archs[self.name]

    @property
    def tp(self) -> int:
        return self.loaded.spec.platforms[self.name].tp

    def pinned_bytes(self, sc: Scenario) -> float:
        """Node bytes always in HBM: the router's weights, both models' KV caches at their
        final context and the larger activation workspace (rdusim.memory's formulas)."""
        spec: CoeWorkload = self.loaded.spec
        b, tp = sc.batch_size, self.tp
        kv = (kv_bytes_per_rank(self.expert.model, tp, b, spec.prompt_tokens + sc.output_tokens)
              + kv_bytes_per_rank(self.router.model, tp, b, spec.prompt_tokens + spec.router.output_tokens))
        # each model's prefill workspace under its deployment's kernels (kept in the run's cache)
        act = max(activation_workspace_bytes(m.dep, b, spec.prompt_tokens) for m in (self.expert, self.router))
        return self.router_bytes + tp * (kv + act)

    def capacity(self, sc: Scenario, *, router: bool = True) -> Capacity:
        """Expert capacity of a node that holds the router (``router=False``: a node of a
        cluster that holds only experts), worked out once per scenario."""
        key = (sc, router)
        if key not in self._capacities:
            pinned = self.pinned_bytes(sc) - (0.0 if router else self.router_bytes)
            self._capacities[key] = node_capacity(self.arch, self.tp, self.expert_bytes, pinned)
        return self._capacities[key]

    def setup(self, sc: Scenario, experts: int, hottest: tuple[int, ...], *, slots: int | None = None) -> ServingSetup:
        spec: CoeWorkload = self.loaded.spec
        cap = self.capacity(sc)
        n_slots = min(cap.hbm_experts, experts) if slots is None else slots
        router_s, expert_s = self._model_s(sc)
        return ServingSetup(
            arch=self.arch, devices=self.tp, experts=experts, slots=max(1, n_slots),
            expert_bytes=self.expert_bytes, policy=spec.cache.policy,
            prefetch=spec.cache.prefetch and n_slots >= 2,
            router_s=router_s, expert_s=expert_s, hottest=hottest)

    def _model_s(self, sc: Scenario) -> tuple:
        """The router's time for a batch of prompts and an expert's for its prompts, one pair
        of callables per scenario (every setup of it shares them, so a serve over nodes asks
        each time once)."""
        got = self._timers.get(sc)
        if got is None:
            router, expert, tokens = self.router, self.expert, self.loaded.spec.router.output_tokens
            got = self._timers[sc] = (lambda b: router.timing(b, tokens).latency_s,
                                      lambda n: expert.latency_s(n, sc.output_tokens))
        return got


def run(loaded: LoadedWorkload, *, trace: bool = False, simulate=None, wants=None) -> RunResult:
    spec: CoeWorkload = loaded.spec
    expert_cfg = _model(spec.experts.model, loaded.file, "experts.model", spec.experts.formats, loaded)
    router_cfg = _model(spec.router.model, loaded.file, "router.model", spec.router.formats, loaded)
    expert_bytes = weight_bytes_per_rank(expert_cfg, 1)      # the whole model's parameters
    router_bytes = weight_bytes_per_rank(router_cfg, 1)
    extra = {} if simulate is None else {"simulate": simulate}
    cache = active_cache()   # the run's cache: router and experts share steps; a sweep worker's points too
    routings = Routings(loaded.seed, spec, load_trace(spec, loaded.file), cache)
    runs = {name: PlatformRun(name, loaded,
                              ModelTimer(loaded.deployment(name, for_machine(router_cfg, loaded.archs[name])),
                                         spec.prompt_tokens, cache, **extra),
                              ModelTimer(loaded.deployment(name, for_machine(expert_cfg, loaded.archs[name])),
                                         spec.prompt_tokens, cache, **extra),
                              expert_bytes, router_bytes, routings)
            for name in spec.platforms}
    for name, cc in coe_nodes.load(loaded).items():
        runs[name].coe_cluster = cc
    for name, cc in coe_nodes.load_footprint(loaded, [n for n in runs if _wants_footprint(n, spec, wants)]).items():
        runs[name].footprint_cluster = cc
    # default reference: the first platform whose experts live in device-attached memory
    # (a machine with a spill tier, the SN40L's DDR: the paper's subject), else the first
    reference = spec.reference or next((n for n in runs if runs[n].arch.spill_tier is not None), next(iter(runs)))
    scenarios = [Scenario(b, t) for b in spec.batch_sizes for t in spec.output_tokens]

    per_platform = len(scenarios) * (1 + len(spec.sweep_experts)) + 1      # progress steps
    with Progress(len(runs) * per_platform, f"coe {spec.name}") as bar:
        # the platforms are independent: on the run's processes (rdusim.parallel), merged in order
        merged = StudyPart.merged(fork_map(lambda name: _run_platform(runs[name], spec, scenarios, wants, trace, bar),
                                           list(runs), reported=lambda i, part: bar.advance(per_platform)))
    rows: list[CoeRow] = merged.rows
    records, oom_reasons, events, per_rep = merged.records, merged.oom_reasons, merged.events, merged.keyed
    _speedups(runs, reference, scenarios, rows, per_rep)
    rows += [CoeRunRow("replications", spec.replications), CoeRunRow("batches_per_replication", spec.batches)]
    return RunResult(
        workload_name=spec.name, kind="coe", resolved=dict(loaded.raw),
        archs={n: plain(a) for n, a in loaded.archs.items()}, seed=loaded.seed, rows=tuple(rows),
        records=tuple(records),
        extra={"reference_platform": reference, "oom_reasons": oom_reasons,
               "scenarios": [s.key for s in scenarios], "replications": spec.replications,
               "batches": spec.batches, "sweep_batches": spec.sweep_batches,
               # platforms whose footprint placed experts over a cluster's nodes: the cluster's name
               # (a footprint the caller does not keep is not found, and its cluster not loaded)
               "footprint_clusters": {n: (r.coe_cluster or r.footprint_cluster).cluster.name for n, r in runs.items()
                                      if (r.coe_cluster or r.footprint_cluster) is not None}},
        trace=tuple(_chrome(events, list(runs))))


def _run_platform(pr: PlatformRun, spec: CoeWorkload, scenarios, wants, trace: bool, bar: Progress) -> StudyPart:
    """Capacity, every scenario (``spec.replications`` independent routings each), the
    expert-count sweep (one routing) and the footprint of one platform (skipped when the
    caller keeps none of its metrics: ``wants``, a sweep's ``--metrics``). Its per-replication
    values by (platform, scenario) are the part's ``keyed`` (the speedups read them)."""
    part = StudyPart()
    rows, records, oom_reasons, per_rep = part.rows, part.records, part.oom_reasons, part.keyed
    events = part.events if trace else None
    name = pr.name
    cap = pr.capacity(Scenario(max(spec.batch_sizes), max(spec.output_tokens)))
    rows += [CoeCapacityRow(name, "max_experts", cap.max_experts), CoeCapacityRow(name, "hbm_experts", cap.hbm_experts),
             CoePlatformRow(name, "expert_bytes", pr.expert_bytes),
             CoePlatformRow(name, "lone_switch_s", lone_switch_s(pr.arch, pr.tp, pr.expert_bytes))]
    batches = spec.warmup_batches + spec.batches
    for sc in scenarios:
        reps = _serve_point(pr, sc, spec.experts.count, range(spec.replications), batches, spec.warmup_batches,
                            rows, None, oom_reasons, trace=events if sc == scenarios[0] else None)
        per_rep[(name, sc.key)] = reps
        bar.advance()
        records.extend({"platform": name, "batch_size": sc.batch_size, "output_tokens": sc.output_tokens,
                        "experts": spec.experts.count, **plain(r)}
                       for r in (reps["rows"][0].rows() if reps.get("rows") else ()))   # replication 0's batches
        for n in spec.sweep_experts:
            if not _wants_sweep_point(name, sc, n, wants):
                bar.advance()
                continue
            _serve_point(pr, sc, n, [0], spec.warmup_batches + spec.sweep_batches, spec.warmup_batches, rows,
                         n, oom_reasons, detail=False)
            bar.advance()
    records.extend(_timing_rows(name, pr, spec))
    if _wants_footprint(name, spec, wants):
        _footprint(pr, spec, rows)
    bar.advance()
    return part


_DETAIL = ("router_s", "switch_s", "expert_s", "switches_per_batch", "bytes_copied_per_batch")


def _serve_point(pr: PlatformRun, sc: Scenario, experts: int, replications, batches: int, warmup: int,
                 out: list, sweep: int | None, oom_reasons, *, detail: bool = True,
                 trace: list | None = None) -> dict[str, list]:
    """Serve each of the replications' routing (``batches`` batches, the first ``warmup``
    not counted); metrics are means over replications (with 95%
    intervals when there are several), appended to ``out``. ``sweep``: the expert count of an expert-count sweep
    point (None: the workload's). Returns the per-replication values and rows."""
    if pr.coe_cluster is not None:          # experts placed over a cluster's nodes
        return coe_nodes.serve_point(pr, sc, experts, replications, batches, warmup, out, sweep, oom_reasons,
                                     detail=detail, trace=trace)
    reason = pr.capacity(sc).fits(experts)
    oom = CoePointRow(pr.name, sc.batch_size, sc.output_tokens, sweep, "oom", int(reason is not None))
    out.append(oom)
    if reason is not None:
        oom_reasons[oom.prefix()] = reason
        return {}
    book = pr.routings
    setup = pr.setup(sc, experts, book.hottest(experts))
    replications = tuple(replications)
    if trace is not None:      # replication 0's timeline (spans of its first counted batches)
        spans: list = []
        rows = serve_table(setup, book.routes(sc.batch_size, experts, batches, replications[0]), trace=spans,
                           outcome=None if setup.prefetch else
                           book.outcome(sc.batch_size, experts, batches, replications[0], setup.slots)).tail(warmup)
        if len(rows):
            first = float(rows.start_s[0])
            cut = first + float(rows.latency_s[:TRACE_BATCHES].sum())
            trace.extend((pr.name, *s) for s in spans if first <= s[1] < cut)
    if not setup.prefetch and current() == Evaluation.CLOSED_FORM:
        # every replication at once, in closed form
        tables = sequential_replications(
            setup, book.outcomes(sc.batch_size, experts, batches, replications, setup.slots), len(replications))
    else:
        tables = BatchTables.stack([serve_table(setup, book.routes(sc.batch_size, experts, batches, r))
                                    for r in replications])
    reps: dict[str, list] = {
        "rows": [tables.replication(0).tail(warmup)],
        "latency_s": tables.means("latency_s", warmup), "hit_rate": tables.hit_rates(warmup),
        "router_s": tables.means("router_s", warmup), "switch_s": tables.means("switch_s", warmup),
        "expert_s": tables.means("expert_s", warmup), "switches_per_batch": tables.means("misses", warmup),
        "bytes_copied_per_batch": tables.means("bytes_copied", warmup)}
    for k in ("latency_s", "hit_rate") + (_DETAIL if detail else ()):
        value, ci = mean_and_ci(reps[k])
        out.append(CoePointRow(pr.name, sc.batch_size, sc.output_tokens, sweep, k, value, ci))
    if detail:         # dollars per CoE batch and per million generated tokens (rdusim.cost)
        value, ci = mean_and_ci(reps["latency_s"])
        for k, (v, c) in rent_rows(pr.arch, pr.tp, value, ci, sc.batch_size * sc.output_tokens).items():
            out.append(CoePointRow(pr.name, sc.batch_size, sc.output_tokens, sweep, k, v, c))
        tokens = sc.batch_size * sc.output_tokens
        joules = [coe_batch_energy(pr, sc.batch_size, sc.output_tokens, pr.loaded.spec.router.output_tokens,
                                   lat, copied, k)
                  for lat, copied, k in zip(reps["latency_s"], reps["bytes_copied_per_batch"],
                                            tables.means("distinct_experts", warmup))]
        if joules and joules[0] is not None:
            for k, scale in (("energy_j", 1.0), ("energy_j_per_token", 1.0 / tokens)):
                v, c = mean_and_ci([j * scale for j in joules])
                out.append(CoePointRow(pr.name, sc.batch_size, sc.output_tokens, sweep, k, v, c))
    return reps



def _speedups(runs, reference: str, scenarios, rows: list, per_rep: dict) -> None:
    """Speedups over ``reference``: the mean of per-replication ratios (both platforms saw
    the same prompts in a replication), with 95% intervals when there are several."""
    switch = {r.platform: r.value for r in rows if isinstance(r, CoePlatformRow) and r.metric == "lone_switch_s"}
    for other in runs:
        if other == reference:
            continue
        rows.append(CoeSpeedupRow(reference, other, None, None, "switch", switch[other] / switch[reference]))
        for sc in scenarios:
            a, c = per_rep.get((reference, sc.key), {}), per_rep.get((other, sc.key), {})
            if not a.get("latency_s") or not c.get("latency_s"):
                continue
            for part, src in (("overall", "latency_s"), ("expert", "expert_s")):
                value, ci = mean_and_ci([y / x for x, y in zip(a[src], c[src])])
                rows.append(CoeSpeedupRow(reference, other, sc.batch_size, sc.output_tokens, part, value, ci))


def _footprint(pr: PlatformRun, spec: CoeWorkload, rows: list) -> None:
    """Fewest nodes (experts spread evenly over them) whose batch latency is within the
    tolerance of the latency with every expert resident in HBM. Latency grows with the
    experts per node, so the search is a bisection over the node count."""
    fp = spec.footprint
    sc = Scenario(fp.batch_size, fp.output_tokens)
    batches = spec.warmup_batches + spec.sweep_batches
    cap = pr.capacity(sc)
    memo: dict[int, bool] = {}
    spanning = pr.coe_cluster or pr.footprint_cluster
    if spanning is not None:                    # experts placed over k nodes of the cluster
        return coe_nodes.footprint(dataclasses.replace(pr, coe_cluster=spanning), spec, sc, rows, batches)

    def near_ideal(per_node: int) -> bool:
        if per_node not in memo:
            book = pr.routings
            routes, hottest = book.routes(sc.batch_size, per_node, batches, 0), book.hottest(per_node)
            lat = []
            for setup in (pr.setup(sc, per_node, hottest), pr.setup(sc, per_node, hottest, slots=per_node)):
                outcome = None if setup.prefetch else book.outcome(sc.batch_size, per_node, batches, 0, setup.slots)
                lat.append(serve_table(setup, routes, outcome=outcome).tail(spec.warmup_batches).mean("latency_s"))
            real, ideal = lat
            memo[per_node] = real <= (1 + fp.latency_tolerance) * ideal
        return memo[per_node]

    for n in spec.footprint_counts:
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
        rows.append(CoeFootprintRow(pr.name, n, lo))


_SWEEP_METRICS = ("oom", "latency_s", "hit_rate")     # what an expert-count sweep point writes


def _wants_sweep_point(platform: str, sc: Scenario, experts: int, wants) -> bool:
    """Whether the caller keeps any metric of the expert-count sweep point (``rdusim
    validate`` reads none: it serves only the workload's own expert count)."""
    return wants is None or any(wants(CoePointRow(platform, sc.batch_size, sc.output_tokens, experts, m, 0).key())
                                for m in _SWEEP_METRICS)


def _wants_footprint(platform: str, spec: CoeWorkload, wants) -> bool:
    """Whether the caller keeps any of the platform's footprint metrics (``wants``: a
    sweep's ``--metrics``; None keeps everything)."""
    return wants is None or any(wants(CoeFootprintRow(platform, n, 0).key()) for n in spec.footprint_counts)


def _timing_rows(name: str, pr: PlatformRun, spec: CoeWorkload) -> list[dict]:
    rows = []
    for role, timer, tokens in (("router", pr.router, (spec.router.output_tokens,)),
                                ("expert", pr.expert, spec.output_tokens)):
        for (batch, out), t in timer.simulated():
            if out in tokens:
                # the same run in roofline mode (execution.ideal): how far the realistic time is from it
                ideal = simulate_inference(timer.dep.ideal(), timer.prompt_tokens, out, batch, timer.cache, cold=True)
                rows.append({"platform": name, "row": "model_timing", "role": role, "model": timer.model.name,
                             "batch": batch, "output_tokens": out, "ttft_s": t.ttft_s, "tpot_s": t.tpot_s,
                             "latency_s": t.latency_s, **{f"{k}_s": v for k, v in t.breakdown_s.items()},
                             "ideal_latency_s": ideal.latency_s,
                             "realistic_over_ideal": t.latency_s / ideal.latency_s if ideal.latency_s > 0 else 0.0})
    return rows


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


def _model(name: str, file: str, key: str, formats=None, loaded: LoadedWorkload | None = None):
    try:
        cfg = load_model(name)
    except InputError as exc:
        raise InputError(file, key, exc.expected, name) from None
    if formats is None:
        return cfg
    return with_checked_formats(cfg, formats, loaded, key.rsplit(".", 1)[0] + ".formats")
