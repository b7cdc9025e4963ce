"""simulate_step for the SN40L: compile the graph, simulate each distinct kernel once,
orchestrate the launches, and report time, traffic, utilisation and per-kernel rows."""

from __future__ import annotations

from rdusim.compiler import DEFAULT_TILES, compile_plan
from rdusim.compiler.plan import Kernel, Plan
from rdusim.config.arch_rdu import RduArch
from rdusim.config.policy import FusionPolicy, LaunchMode
from rdusim.cache import RunCache, active_cache
from rdusim.engine.breakdown import BREAKDOWN_KEYS, frozen
from rdusim.engine.rdu.cache import kernel_run
from rdusim.engine.rdu.collective import plan_collective_cost
from rdusim.engine.rdu.hardware import SocketHw
from rdusim.engine.rdu.launch import run_schedule
from rdusim.engine.rdu.pipeline import KernelRun
from rdusim.engine.rdu.trace import StepTrace, add_step
from rdusim.engine.step import StepResult
from rdusim.errors import InputError
from rdusim.graph.opgraph import OpGraph
from rdusim.tracing import TraceBuilder


def simulate_step(arch: RduArch, graph: OpGraph | None, *, fusion: FusionPolicy, launch: LaunchMode, tp: int,
                  tiles: int = DEFAULT_TILES, trace: bool = False, cache: RunCache | None = None,
                  plan: Plan | None = None, host_s: float = 0.0) -> StepResult:
    """One step of ``graph`` (one TP rank's work; every socket runs the same) on the node, or
    of ``plan`` when given (compiled from such a graph; ``graph`` may then be None).
    ``host_s``: the serving stack's host work per step (model steps), after the kernels."""
    span = arch.collectives.span           # a cluster deployment: tp may span its nodes
    if tp > (arch.node.sockets if span is None else span.max_ranks):
        raise InputError(arch.name, "node.sockets", f"at least tp={tp} sockets", arch.node.sockets)
    plan = plan or compile_plan(graph, arch, fusion, tiles=tiles)
    tracer = StepTrace(TraceBuilder(), arch.name, sockets=tp) if trace else None
    return simulate_plan(arch, plan, launch=launch, trace=trace, cache=cache, host_s=host_s,
                         tracer=tracer)


def simulate_plan(arch: RduArch, plan: Plan, *, launch: LaunchMode, trace: bool = False,
                  cache: RunCache | None = None, host_s: float = 0.0,
                  tracer: StepTrace | None = None) -> StepResult:
    """Simulate a compiled step. ``tracer``: add its timeline to that builder
    (:mod:`rdusim.engine.rdu.trace`); ``trace``: return the builder's events as the result's
    ``trace`` (a builder of its own, one socket, when no ``tracer`` is given)."""
    if trace and tracer is None:
        tracer = StepTrace(TraceBuilder(), arch.name)
    cache = active_cache(cache)
    hw = SocketHw.of(arch)
    runs: list[tuple[KernelRun, bool]] = [kernel_run(cache, k, hw, plan.tiles) for k in plan.kernels]
    sched = run_schedule([r.duration_s for r, _ in runs], launch, arch, [k.streams for k in plan.kernels],
                         host_s=host_s)
    breakdown = dict.fromkeys(BREAKDOWN_KEYS, 0.0)
    breakdown["host"] = sched.host_s
    prev_end = 0.0
    tiers: dict[str, float] = {}
    pcu_s = pmu_s = 0.0
    rows = []
    for i, (k, (run, hit), slot) in enumerate(zip(plan.kernels, runs, sched.slots)):
        breakdown["launch"] += slot.start_s - prev_end
        prev_end = slot.end_s
        for key, v in split_kernel_time(k, run).items():
            breakdown[key] += v
        for t, b in run.bytes_by_tier.items():
            if b:
                tiers[t] = tiers.get(t, 0.0) + b
        pcu_s += run.duration_s * k.pcus
        pmu_s += run.duration_s * k.pmus
        rows.append(kernel_row(i, k, run, hit, slot.start_s, slot.start_s - slot.launch_start_s, arch))
    total = sched.end_s
    sock = arch.socket
    util = {
        "pcu": pcu_s / (sock.pcu.count * total) if total else 0.0,
        "pmu": pmu_s / (sock.pmu.count * total) if total else 0.0,
        "hbm_bw": tiers.get("hbm", 0.0) / (sock.hbm.bandwidth_bytes_per_s * total) if total else 0.0,
    }
    if tracer is not None:
        add_step(tracer, plan, [r for r, _ in runs], sched, launch)
    events = tracer.builder.events() if trace and tracer is not None else ()
    return StepResult(time_s=total, kernels=len(plan.kernels), flops=plan.flops, bytes_by_tier=frozen(tiers),
                      breakdown_s=frozen(breakdown), util=frozen(util), records=tuple(rows), trace=events)


def split_kernel_time(k: Kernel, run: KernelRun) -> dict[str, float]:
    """A kernel's duration split over compute / memory / collective in proportion to how
    long each kind of resource was busy in it."""
    if k.is_collective_only:
        return {"collective": run.duration_s}
    weights = {"compute": run.compute_busy_s, "memory": max(run.tier_busy_s.values(), default=0.0),
               "collective": run.collective_s}
    total = sum(weights.values())
    if total <= 0:
        return {"compute": run.duration_s}
    return {key: run.duration_s * w / total for key, w in weights.items()}


def kernel_row(i: int, k: Kernel, run: KernelRun, hit: bool, start: float, launch_gap: float,
               arch: RduArch) -> dict:
    sock = arch.socket
    moved = sum(run.bytes_by_tier.values())
    dur = run.duration_s
    return {
        "kernel": i, "name": k.name, "layer": k.layer, "ops": len(k.ops), "stages": len(k.stages),
        "start_s": start, "time_s": dur, "launch_s": launch_gap,
        "flops": k.flops, "hbm_bytes": run.bytes_by_tier.get("hbm", 0.0),
        "ddr_bytes": run.bytes_by_tier.get("ddr", 0.0), "d2d_bytes": run.d2d_bytes, "p2p_bytes": run.p2p_bytes,
        "pcus": k.pcus, "pmus": k.pmus, "agcus": k.agcus, "passes": k.passes,
        "pcu_util": k.pcus / sock.pcu.count, "pmu_util": k.pmus / sock.pmu.count, "pcu_busy": run.pcu_busy,
        "hbm_bw_util": run.bytes_by_tier.get("hbm", 0.0) / (sock.hbm.bandwidth_bytes_per_s * dur) if dur else 0.0,
        "oi_flops_per_byte": k.flops / moved if moved else None,
        "reused": int(hit),
        # the algorithm(s) its collective stages ran (rdusim.engine.collectives), "" if none
        "algorithm": _algorithms(k, arch),
        # the inter-node phase of its collectives when they span a cluster's nodes (else 0)
        "inter_node_s": _inter_node_s(k, arch),
    }


def _inter_node_s(k: Kernel, arch: RduArch) -> float:
    """Seconds the kernel's collectives spend crossing nodes (rdusim.engine.collectives_cluster):
    0 unless the deployment's collectives span a cluster's nodes."""
    if arch.collectives.span is None:
        return 0.0
    return sum(getattr(plan_collective_cost(s.collective, arch.links.p2p, arch.collectives), "inter_s", 0.0)
               for s in k.stages if s.collective is not None)


def _algorithms(k: Kernel, arch: RduArch) -> str:
    """The algorithms of the kernel's collective stages on ``arch``'s P2P fabric, worked
    out once per kernel object and fabric."""
    stages = [s for s in k.stages if s.collective is not None]
    if not stages:
        return ""
    memo = k.__dict__.setdefault("_algorithms", {})
    fabric = (arch.links.p2p, arch.collectives)
    got = memo.get(fabric)
    if got is None:
        got = memo[fabric] = ",".join(sorted({plan_collective_cost(s.collective, *fabric).algorithm.value
                                              for s in stages}))
    return got
