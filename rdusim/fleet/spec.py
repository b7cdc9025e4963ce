"""Plan files (``kind: plan``): a serve workload's traffic and scheduler fields, the
models to plan for, and a ``plan:`` block -- the SLO on latency percentiles and the space
searched::

    models: [llama2-7b, llama3-70b]
    arrivals: {process: trace, trace: data/azure_conv_excerpt.csv, format: azure}
    requests: 360
    warmup_requests: 40
    platforms: {sn40l: {arch: arch/sn40l.yaml, stack: sambanova}, ...}
    plan:
      slo: {ttft_p99_s: 2.0, tbt_p99_s: 0.2, e2e_p99_s: 30.0}
      tp: [4, 8]                 # TP degrees tried on every platform
      max_replicas: 6            # per pool
      layouts: [colocated, disaggregated]
      mixed: true                # disaggregated pools on two different platforms too
      exhaustive: false          # true: every replica count (pair), for the Pareto plot
      router: least_outstanding
      router_latency_s: {value: 2.0e-4, source: "..."}
      clusters: {sn40l: clusters/sn40l_x2.yaml, ...}   # the network the KV cache crosses

Everything but ``kind``, ``models`` and ``plan`` is checked as a serve workload's field
(same keys, same messages).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

from rdusim.config import limits as L
from rdusim.config.cluster import ClusterSpec, load_cluster
from rdusim.config.strict import Ctx, build
from rdusim.config.workload import (LoadedWorkload, WorkloadKind, check_tp, platform_stack, resolve_path,
                                    workload_file)
from rdusim.config.workload_serve import ServeWorkload
from rdusim.config.yamlio import load_yaml
from rdusim.config.arch import load_arch
from rdusim.errors import InputError
from rdusim.fleet.fleet import Layout
from rdusim.fleet.router import RouterPolicy
from types import MappingProxyType
from rdusim.config.checks import check_tp_divides
from rdusim.studies.serve import _model


@dataclass(frozen=True)
class PlanSlo:
    ttft_p99_s: Optional[float] = field(default=None, metadata={"gt": 0})
    tbt_p99_s: Optional[float] = field(default=None, metadata={"gt": 0})
    e2e_p99_s: Optional[float] = field(default=None, metadata={"gt": 0})

    def limits(self) -> dict[str, float]:
        """metric key -> limit, of the constraints given."""
        keys = (("ttft.p99_s", self.ttft_p99_s), ("tbt.p99_s", self.tbt_p99_s), ("e2e.p99_s", self.e2e_p99_s))
        return {k: v for k, v in keys if v is not None}


@dataclass(frozen=True)
class Sourced:
    value: float = field(metadata={"ge": 0, "le": 10.0})
    source: str


@dataclass(frozen=True)
class PlanBlock:
    slo: PlanSlo
    router_latency_s: Sourced
    tp: tuple[int, ...] = (8,)
    max_replicas: int = field(default=4, metadata={"gt": 0, "le": 64})
    layouts: tuple[Layout, ...] = (Layout.COLOCATED,)
    mixed: bool = False
    exhaustive: bool = False       # every replica count (pair) up to max_replicas, not just up to the first meeting the SLO
    router: RouterPolicy = RouterPolicy.LEAST_OUTSTANDING
    clusters: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadedPlan:
    file: str
    models: tuple[str, ...]
    plan: PlanBlock
    serve: LoadedWorkload
    clusters: Mapping[str, ClusterSpec]


def load_plan(path: str, seed: Optional[int] = None) -> LoadedPlan:
    p = workload_file(path)
    file = str(p)
    raw = load_yaml(p)
    if not isinstance(raw, dict):
        raise InputError(file, "(top level)", "a mapping", raw)
    if raw.get("kind") != "plan":
        raise InputError(file, "kind", "plan (a plan file: rdusim plan FILE)", raw.get("kind"))
    models = raw.get("models")
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise InputError(file, "models", "a non-empty list of model names", models)

    cfgs = [_model(m, file, f"models[{i}]") for i, m in enumerate(models)]
    if "plan" not in raw:
        raise InputError(file, "plan", "a plan block (slo, router_latency_s, tp, max_replicas, ...)", None)
    plan = build(PlanBlock, raw["plan"], Ctx(file=file), "plan")
    if not plan.slo.limits():
        raise InputError(file, "plan.slo", "at least one of ttft_p99_s, tbt_p99_s, e2e_p99_s", {})
    for cfg in cfgs:
        for i, tp in enumerate(plan.tp):
            check_tp_divides(cfg, tp, file, f"plan.tp[{i}]")
    body = {k: v for k, v in raw.items() if k not in ("kind", "models", "plan")}
    body.update(kind="serve", model=models[0])
    spec = build(ServeWorkload, body, Ctx(file=file))
    if not spec.platforms:
        raise InputError(file, "platforms", "at least one platform (a name mapped to {arch: ..., stack: ...})", {})
    archs, stacks, files, clusters = {}, {}, {}, {}
    for name, plat in spec.platforms.items():
        af = resolve_path(plat.arch, file)
        if not af.is_file():
            raise InputError(file, f"platforms.{name}.arch", "a path to an arch YAML file", plat.arch)
        archs[name] = load_arch(af)
        files[name] = str(af)
        for i, tp in enumerate(plan.tp):
            check_tp(archs[name], tp, file, f"plan.tp[{i}]")
        stacks[name] = platform_stack(archs[name], plat, (), file, name)
        if Layout.DISAGGREGATED in plan.layouts:
            if name not in plan.clusters:
                raise InputError(file, f"plan.clusters.{name}", "a cluster file (the network a disaggregated "
                                 "fleet sends the KV cache over)", None)
            cf = resolve_path(plan.clusters[name], file)
            if not cf.is_file():
                raise InputError(file, f"plan.clusters.{name}", "a path to a cluster YAML file", plan.clusters[name])
            clusters[name] = load_cluster(cf)
    extra = sorted(set(plan.clusters) - set(spec.platforms))
    if extra:
        raise InputError(file, f"plan.clusters.{extra[0]}", f"a platform of this file (one of {sorted(spec.platforms)})",
                         extra[0])
    run_seed = seed if seed is not None else spec.seed
    if run_seed > L.MAX_SEED:
        raise InputError("--seed", "seed", f"an integer in 0..{L.MAX_SEED}", run_seed)
    loaded = LoadedWorkload(file, WorkloadKind.SERVE, spec, MappingProxyType(body), MappingProxyType(archs),
                            run_seed, MappingProxyType(stacks), MappingProxyType(files))
    return LoadedPlan(file, tuple(models), plan, loaded, MappingProxyType(clusters))
