"""simulate_step for the SN40L: compile the graph, simulate each distinct kernel once,
orchestrate the launches, and report time, traffic, utilisation and per-kernel rows."""

from __future__ import annotations

from rdusim.compiler import DEFAULT_TILES, compile_plan
from rdusim.compiler.plan import Kernel, Plan
from rdusim.config.arch_rdu import RduArch
from rdusim.config.policy import FusionPolicy, LaunchMode
from rdusim.cache import RunCache, active_cache
from rdusim.engine.breakdown import BREAKDOWN_KEYS, frozen
from rdusim.engine.rdu.cache import kernel_runs
from rdusim.engine.rdu.collective import plan_collective_cost
from rdusim.engine.rdu.hardware import SocketHw
from rdusim.engine.rdu.launch import argument_load_s, run_schedule
from rdusim.engine.rdu.pipeline import KernelRun
from rdusim.engine.rdu.trace import StepTrace, add_step
from rdusim.engine.step import Records, StepResult
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
    runs, repeats = kernel_runs(cache, plan.kernels, hw=SocketHw.of(arch), tiles=plan.tiles)
    sched = run_schedule([r.duration_s for r in runs], launch, arch, [k.streams for k in plan.kernels],
                         host_s=host_s)
    breakdown = dict.fromkeys(BREAKDOWN_KEYS, 0.0)
    breakdown["host"] = sched.host_s
    prev_end = 0.0
    tiers: dict[str, float] = {}
    pcu_s = pmu_s = p2p = 0.0
    per_kernel: list[_Facts] = []
    facts: dict = {}           # kernel signature -> _Facts (repeated kernels share them)
    for k, run, slot in zip(plan.kernels, runs, sched.slots):
        f = facts.get(k.signature)
        if f is None:
            f = facts[k.signature] = _Facts.of(k, run, arch)
        breakdown["launch"] += slot.start_s - prev_end
        prev_end = slot.end_s
        for key, v in f.split:
            breakdown[key] += v
        for t, b in f.tiers:
            tiers[t] = tiers.get(t, 0.0) + b
        pcu_s += f.pcu_s
        p2p += f.p2p
        pmu_s += f.pmu_s
        per_kernel.append(f)
    total = sched.end_s
    sock = arch.socket
    util = {
        "pcu": pcu_s / (sock.pcu.count * total) if total else 0.0,
        "pmu": pmu_s / (sock.pmu.count * total) if total else 0.0,
        "hbm_bw": tiers.get("hbm", 0.0) / (sock.hbm.bandwidth_bytes_per_s * total) if total else 0.0,
    }
    if tracer is not None:
        add_step(tracer, plan, runs, sched, launch)
    events = tracer.builder.events() if trace and tracer is not None else ()
    return StepResult(time_s=total, kernels=len(plan.kernels), flops=plan.flops, bytes_by_tier=frozen(tiers),
                      breakdown_s=frozen(breakdown), util=frozen(util),
                      records=Records(lambda: _rows(plan, per_kernel, tuple(repeats), sched)), trace=events,
                      loop_launch_s=arch.launch.software_s if launch == LaunchMode.HARDWARE and plan.kernels else 0.0,
                      program_load_s=argument_load_s(arch, plan.kernels),
                      link_bytes=frozen({"fabric": p2p}) if p2p else frozen({}))


def _rows(plan: Plan, per_kernel: list, repeats: tuple, sched) -> list[dict]:
    """The step's records, a row per kernel (made when first read)."""
    return [f.row(i, k, repeat, slot.start_s, slot.start_s - slot.launch_start_s)
            for i, (f, k, repeat, slot) in enumerate(zip(per_kernel, plan.kernels, repeats, sched.slots))]


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


class _Facts:
    """What a step reads from one kernel and its run, the same for every kernel of that
    content (a decoder layer's kernels repeated 32-80 times): worked out once a step."""

    __slots__ = ("split", "tiers", "pcu_s", "pmu_s", "stages", "time_s", "flops", "hbm", "ddr", "d2d", "p2p",
                 "pcus", "pmus", "agcus", "passes", "pcu_util", "pmu_util", "pcu_busy", "hbm_bw_util", "oi",
                 "algorithm", "inter_node_s")

    @classmethod
    def of(cls, k: Kernel, run: KernelRun, arch: RduArch) -> "_Facts":
        f = cls()
        sock = arch.socket
        dur = run.duration_s
        f.split = tuple(split_kernel_time(k, run).items())
        f.tiers = tuple((t, b) for t, b in run.bytes_by_tier.items() if b)
        f.pcu_s, f.pmu_s = dur * k.pcus, dur * k.pmus
        moved = sum(run.bytes_by_tier.values())
        hbm = run.bytes_by_tier.get("hbm", 0.0)
        f.stages, f.time_s, f.flops, f.hbm = len(k.stages), dur, k.flops, hbm
        f.ddr, f.d2d, f.p2p = run.bytes_by_tier.get("ddr", 0.0), run.d2d_bytes, run.p2p_bytes
        f.pcus, f.pmus, f.agcus, f.passes = k.pcus, k.pmus, k.agcus, k.passes
        f.pcu_util, f.pmu_util, f.pcu_busy = k.pcus / sock.pcu.count, k.pmus / sock.pmu.count, run.pcu_busy
        f.hbm_bw_util = hbm / (sock.hbm.bandwidth_bytes_per_s * dur) if dur else 0.0
        f.oi = k.flops / moved if moved else None
        # the algorithm(s) its collective stages ran (rdusim.engine.collectives), "" if none
        f.algorithm = _algorithms(k, arch)
        # the inter-node phase of its collectives when they span a cluster's nodes (else 0)
        f.inter_node_s = _inter_node_s(k, arch)
        return f

    def row(self, i: int, k: Kernel, repeat: bool, start: float, launch_gap: float) -> dict:
        """``repeat``: an identical kernel ran earlier in the step (its run is reused)."""
        return {
            "kernel": i, "name": k.name, "layer": k.layer, "ops": len(k.ops), "stages": self.stages,
            "start_s": start, "time_s": self.time_s, "launch_s": launch_gap,
            "flops": self.flops, "hbm_bytes": self.hbm, "ddr_bytes": self.ddr, "d2d_bytes": self.d2d,
            "p2p_bytes": self.p2p, "pcus": self.pcus, "pmus": self.pmus, "agcus": self.agcus,
            "passes": self.passes, "pcu_util": self.pcu_util, "pmu_util": self.pmu_util,
            "pcu_busy": self.pcu_busy, "hbm_bw_util": self.hbm_bw_util, "oi_flops_per_byte": self.oi,
            "reused": int(repeat), "algorithm": self.algorithm, "inter_node_s": self.inter_node_s,
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
