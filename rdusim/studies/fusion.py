"""The fusion study (SN40L paper, Table 1 / Figure 6): unfused vs fused + SO vs fused + HO.

Metrics for the first RDU platform, per benchmark B and mode M in unfused / fused_so /
fused_ho: ``fusion.B.M.time_s``, ``.kernels``, ``.hbm_bw_util``, ``.pcu_util``,
``.pmu_util``, ``.oi_flops_per_byte``; ``fusion.B.speedup.fused_so_vs_unfused``,
``.fused_ho_vs_unfused``, ``.fused_ho_vs_fused_so``. Every platform P also gets
``fusion.B.P.<mode>.time_s`` (GPU modes: unfused / fused). Records: one row per kernel
of one step per (platform, benchmark, mode). Every (benchmark, platform, mode) gets
``fusion.B.P.M.oom`` (and the first RDU ``fusion.B.M.oom``): 1 when the step does not fit
the device's memory (:mod:`rdusim.memory`; on an RDU the compiler's placement raises
OutOfMemory), with the reason in ``extra.oom_reasons`` and no time.

Unfused runs are launched by host software (every PyTorch operator is a kernel the
framework launches); fused runs are launched both ways.

Trace (``--trace``): each RDU platform's steps (benchmark x mode) one after another on
its host and TP rank 0's socket, with kernels, launches, pipeline stages, memory
channels and links on their own threads (:mod:`rdusim.engine.rdu.trace`).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

from rdusim.config.arch import ArchSpec
from rdusim.config.arch_common import ArchKind
from rdusim.config.model import load_model
from rdusim.config.policy import FusionPolicy, LaunchMode
from rdusim.config.workload import LoadedWorkload, resolve_path
from rdusim.config.workload_fusion import FusionBenchmark, FusionWorkload
from rdusim.engine.step import StepResult
from rdusim.errors import InputError
from rdusim.compiler.plan import Plan
from rdusim.graph.opgraph import OpGraph
from rdusim.graph.phase import Phase
from rdusim.memory import OutOfMemory, graph_memory
from rdusim.parallel import fork_map, using_jobs
from rdusim.tracing import TraceBuilder
from rdusim.results import RunResult, plain
from rdusim.rows.fusion import SPEEDUP, FusionRow, step_rows
from rdusim.studies.part import StudyPart
from rdusim.studies.fusion_summary import summary  # noqa: F401  (the study's table)

RDU_MODES = ("unfused", "fused_so", "fused_ho")
RDU_RUNS = (("unfused", FusionPolicy.UNFUSED, LaunchMode.SOFTWARE),     # (mode, plan, launch)
            ("fused_so", FusionPolicy.FUSED, LaunchMode.SOFTWARE),
            ("fused_ho", FusionPolicy.FUSED, LaunchMode.HARDWARE))
GPU_MODES = ("unfused", "fused")
SPEEDUPS = (("fused_so_vs_unfused", "fused_so", "unfused"), ("fused_ho_vs_unfused", "fused_ho", "unfused"),
            ("fused_ho_vs_fused_so", "fused_ho", "fused_so"))


def bench_tp(loaded: LoadedWorkload, bench: FusionBenchmark, platform: str, index: int) -> int:
    tp = bench.tp if bench.tp is not None else (1 if bench.is_fft else loaded.spec.platforms[platform].tp)
    arch = loaded.archs[platform]
    devices = arch.node.sockets if arch.kind == ArchKind.RDU else arch.node.gpus
    if tp > devices:
        raise InputError(loaded.file, f"benchmarks[{index}].tp", f"at most the {devices} devices of {arch.name}", tp)
    return tp


def build_graph(loaded: LoadedWorkload, bench: FusionBenchmark, tp: int, index: int,
                layers: int | None = None) -> OpGraph:
    """The benchmark's graph for one TP rank (``layers``: cut the model to that many decoder
    layers instead of the benchmark's own depth)."""
    where = f"{loaded.file}: benchmarks[{index}]"
    if bench.is_fft:
        try:
            from rdusim.graph import monarch
        except ModuleNotFoundError as exc:
            raise InputError(loaded.file, f"benchmarks[{index}].model",
                             "a graph builder this version has (rdusim.graph.monarch is missing)",
                             bench.model) from exc
        if bench.model == "flashfftconv":
            return monarch.flashfftconv_graph(bench.seq, bench.batch, bench.channels, bench.order)
        return monarch.monarch_fft_graph(bench.n, bench.order, bench.batch)
    from rdusim.graph.model_graph import build_model_graph

    return build_model_graph(bench_model(loaded, bench), bench.phase, bench.batch, bench.seq, tp=tp,
                             layers=layers or bench.layers, weight_density=bench.weight_density, origin=where)


def bench_model(loaded: LoadedWorkload, bench: FusionBenchmark):
    name = bench.model
    return load_model(str(resolve_path(name, loaded.file)) if name.endswith((".yaml", ".yml")) else name)


def rdu_plans(loaded: LoadedWorkload, bench: FusionBenchmark, arch, tp: int, index: int,
              graph: OpGraph | None) -> dict[FusionPolicy, Plan]:
    """The benchmark's unfused and fused plans. A step of a model is compiled from its first
    layers with one repeated (exactly the whole model's plans, without its graph:
    :mod:`rdusim.compiler.repeat` for inference, :mod:`rdusim.compiler.repeat_runs` for
    training, whose layers come back in backward and optimizer runs), unless ``graph`` is
    already built."""
    from rdusim.compiler import compile_plan
    from rdusim.compiler import repeat, repeat_runs

    tiles, buffering = loaded.execution.tiles, loaded.execution.buffering
    if graph is None and not bench.is_fft:
        if bench.phase == Phase.TRAIN:
            template, compile_repeated = repeat_runs.TEMPLATE_LAYERS, repeat_runs.compile_repeated_runs
        else:
            template, compile_repeated = repeat.TEMPLATE_LAYERS, repeat.compile_repeated
        depth = bench_model(loaded, bench).num_hidden_layers
        layers = min(bench.layers, depth) if bench.layers else depth
        if layers > template:
            head = build_graph(loaded, bench, tp, index, layers=template)
            plans = {p: compile_repeated(head, layers, arch, p, tiles=tiles, buffering=buffering)
                     for p in FusionPolicy}
            if all(plan is not None for plan in plans.values()):
                return plans
    graph = graph or build_graph(loaded, bench, tp, index)
    return {p: compile_plan(graph, arch, p, tiles=tiles, buffering=buffering) for p in FusionPolicy}


@dataclass
class Timeline:
    """One platform's traced steps, laid end to end (``GAP_S`` apart) on its host and sockets.
    Only TP rank 0's socket is traced: the other ranks run the same kernels at the same
    times, and the whole suite then fits the trace's event bound."""

    builder: TraceBuilder
    platform: str
    bench: str = ""
    clock_s: float = 0.0

    GAP_S = 1e-3

    def next(self, mode: str):
        from rdusim.engine.rdu.trace import StepTrace

        return StepTrace(self.builder, self.platform, sockets=1, start_s=self.clock_s, label=f"{self.bench} {mode}")

    def advance(self, step_s: float) -> None:
        self.clock_s += step_s + self.GAP_S


def host_step_s(loaded: LoadedWorkload, platform: str, bench: FusionBenchmark) -> float:
    """The stack's host work per step of a model benchmark (sampling, scheduling); none for
    a bare kernel such as an FFT, and none in training (no generation loop)."""
    if bench.is_fft or bench.phase == Phase.TRAIN:
        return 0.0
    return loaded.stacks[platform].host.step_s(bench.batch)


def run_rdu(arch, plans: dict[FusionPolicy, Plan], host_s: float,
            timeline: Timeline | None = None) -> dict[str, StepResult]:
    from rdusim.engine.rdu.step import simulate_plan

    out = {}
    for mode, policy, launch in RDU_RUNS:
        tracer = timeline.next(mode) if timeline else None
        out[mode] = step = simulate_plan(arch, plans[policy], launch=launch, host_s=host_s, tracer=tracer)
        if timeline:
            timeline.advance(step.time_s)
    return out


def gpu_repeated(loaded: LoadedWorkload, bench: FusionBenchmark, arch, tp: int, index: int):
    """(memory need, kernels by policy) of a step of a model from its first layers with the
    middle one repeated (:mod:`rdusim.engine.gpu.repeat`: the whole model's kernels and
    footprint without its 30-80 layer graph; a training step's layers come back in its
    backward and optimizer runs), or None when that shortcut does not apply (then the
    whole graph is built)."""
    if bench.is_fft:
        return None
    try:
        from rdusim.engine.gpu.repeat import TEMPLATE_LAYERS, repeated_kernels, repeated_step_kernels
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("rdusim.engine.gpu"):
            return None
        raise
    from rdusim.memory import repeated_graph_memory

    depth = bench_model(loaded, bench).num_hidden_layers
    layers = min(bench.layers, depth) if bench.layers else depth
    if layers <= TEMPLATE_LAYERS:
        return None
    head = build_graph(loaded, bench, tp, index, layers=TEMPLATE_LAYERS)
    needs = [repeated_graph_memory(arch, head, layers, 1, p) for p in GPU_POLICIES]
    repeat = repeated_step_kernels if bench.phase == Phase.TRAIN else repeated_kernels
    kernels = {p: repeat(head, layers, p, arch) for p in GPU_POLICIES}
    if any(n is None for n in needs) or any(k is None for k in kernels.values()):
        return None
    return fullest(needs), kernels


GPU_POLICIES = (FusionPolicy.UNFUSED, FusionPolicy.FUSED)


def fullest(needs):
    """The memory need a platform is judged by when it runs every mode of a benchmark: the
    first that does not fit, else the one using the most HBM (each mode materialises its own
    activations: the unfused one its attention scores)."""
    bad = [n for n in needs if not n.fits]
    return bad[0] if bad else max(needs, key=lambda n: n.tiers[0].used_bytes)


def run_gpu(loaded: LoadedWorkload, platform: str, graph: OpGraph | None, tp: int,
            host_s: float, kernels: dict | None = None) -> dict[str, StepResult] | None:
    """Both modes on the GPU: from ``kernels`` by policy when given, else from ``graph``."""
    try:
        from rdusim.engine.gpu.step import simulate_kernels, simulate_step
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("rdusim.engine.gpu"):
            return None
        raise
    arch = loaded.archs[platform]
    launch = loaded.launch(platform)
    out = {}
    for mode, policy in (("unfused", FusionPolicy.UNFUSED), ("fused", FusionPolicy.FUSED)):
        if kernels is not None:
            out[mode] = simulate_kernels(arch, kernels[policy], launch=launch, tp=tp, host_s=host_s)
        else:
            out[mode] = simulate_step(arch, graph, fusion=policy, launch=launch, tp=tp, host_s=host_s)
    return out


def mode_metrics(step: StepResult) -> dict[str, float]:
    """Time, kernels, operational intensity and one ``<unit>_util`` per utilisation the engine
    reports (RDU: pcu, pmu, hbm_bw; GPU: sm, hbm_bw)."""
    out = {"time_s": step.time_s, "kernels": step.kernels,
           "oi_flops_per_byte": step.oi_flops_per_byte if sum(step.bytes_by_tier.values()) else 0.0}
    out.update({f"{unit}_util": float(value) for unit, value in step.util.items()})
    return out


def _rows(bench: str, platform: str, first: bool, mode: str, values: dict) -> list[FusionRow]:
    """The rows of one platform's (benchmark, mode), and their un-prefixed copy on the first RDU."""
    out = step_rows(bench, platform, mode, values)
    return out + step_rows(bench, None, mode, values) if first else out


def run(loaded: LoadedWorkload, *, trace: bool = False, wants=None) -> RunResult:
    """Every benchmark on every platform; with ``wants`` (a caller keeping metrics only:
    every metric is computed) no kernel records."""
    spec: FusionWorkload = loaded.spec
    keep_records = spec.kernel_records and wants is None
    tracer = TraceBuilder()
    timelines: dict[str, Timeline] = {}
    # The benchmarks are independent: on the run's processes (rdusim.parallel), merged in
    # order. A trace lays every step after the one before, so a traced run is done in order.
    benchmarks = list(enumerate(spec.benchmarks))
    with using_jobs(1) if trace else nullcontext():
        merged = StudyPart.merged(fork_map(
            lambda ib: _bench(loaded, ib[0], ib[1], tracer if trace else None, timelines, keep_records),
            benchmarks))
    rows: list[FusionRow] = merged.rows
    records, notes, oom_reasons, layer_util = merged.records, merged.notes, merged.oom_reasons, merged.keyed
    first_rdu = next((p for p in spec.platforms if loaded.archs[p].kind == ArchKind.RDU), None)
    extra = {"platforms": list(spec.platforms), "first_rdu": first_rdu, "notes": notes,
             "benchmarks": [plain(b) for b in spec.benchmarks], "largest_fused_kernel": layer_util,
             "oom_reasons": oom_reasons}
    return RunResult(workload_name=spec.name, kind="fusion", resolved=dict(loaded.raw),
                     archs={n: plain(a) for n, a in loaded.archs.items()}, seed=loaded.seed, rows=tuple(rows),
                     records=tuple(records), extra=extra, trace=tracer.events() if trace else ())


def _bench(loaded: LoadedWorkload, index: int, bench: FusionBenchmark, tracer: TraceBuilder | None,
           timelines: dict[str, Timeline], keep_records: bool) -> StudyPart:
    """One benchmark on every platform: its rows, kernel records (if ``keep_records``), notes
    and OOM reasons. ``tracer``: lay its RDU steps on the platforms' ``timelines`` (None: no trace)."""
    spec: FusionWorkload = loaded.spec
    part = StudyPart()
    rows, records, oom_reasons = part.rows, part.records, part.oom_reasons
    first_rdu = next((p for p in spec.platforms if loaded.archs[p].kind == ArchKind.RDU), None)
    graphs: dict[int, OpGraph] = {}       # by TP degree: built for a GPU platform, shared
    for platform in spec.platforms:
        arch: ArchSpec = loaded.archs[platform]
        tp = bench_tp(loaded, bench, platform, index)
        modes = RDU_MODES if arch.kind == ArchKind.RDU else GPU_MODES
        if arch.kind == ArchKind.RDU:
            try:
                plans = rdu_plans(loaded, bench, arch, tp, index, graphs.get(tp))
            except OutOfMemory as exc:
                _oom(rows, oom_reasons, bench.name, platform, platform == first_rdu, modes,
                     f"{platform} tp{tp}: {exc.reason}")
                continue
            timeline = None
            if tracer is not None:
                timeline = timelines.setdefault(platform, Timeline(tracer, platform))
                timeline.bench = bench.name
            steps = run_rdu(arch, plans, host_step_s(loaded, platform, bench), timeline=timeline)
        else:
            repeated = gpu_repeated(loaded, bench, arch, tp, index)
            if repeated is not None:
                need, kernels, graph = repeated[0], repeated[1], None
            else:
                graph = graphs[tp] = graphs.get(tp) or build_graph(loaded, bench, tp, index)
                need, kernels = fullest([graph_memory(arch, graph, p) for p in GPU_POLICIES]), None
            if not need.fits:
                _oom(rows, oom_reasons, bench.name, platform, False, modes, f"{platform} tp{tp}: {need.reason}")
                continue
            steps = run_gpu(loaded, platform, graph, tp, host_step_s(loaded, platform, bench), kernels)
            if steps is None:
                part.notes[platform] = "GPU engine not available (rdusim.engine.gpu is not installed)"
                continue
        first = platform == first_rdu
        for mode, step in steps.items():
            rows += _rows(bench.name, platform, first, mode, {**mode_metrics(step), "oom": 0})
            if keep_records:
                records += [{"benchmark": bench.name, "platform": platform, "mode": mode, **r}
                            for r in step.records]
        for key, num, den in SPEEDUPS if arch.kind == ArchKind.RDU else (("fused_vs_unfused", "fused", "unfused"),):
            value = steps[den].time_s / steps[num].time_s if steps[num].time_s > 0 else 0.0
            rows += _rows(bench.name, platform, first, SPEEDUP, {key: value})
        if platform == first_rdu:
            part.keyed[bench.name] = largest_kernel(steps["fused_ho"])
    return part


def _oom(rows: list, reasons, bench: str, platform: str, first: bool, modes, reason: str) -> None:
    """A benchmark that does not fit a platform: ``.oom = 1`` per mode, no times."""
    for mode in modes:
        rows += _rows(bench, platform, first, mode, {"oom": 1})
    reasons[f"{bench}.{platform}"] = reason


def largest_kernel(step: StepResult) -> dict[str, float]:
    """The longest decoder-layer kernel of a fused step (the longest kernel when there are no
    layers, as in an FFT): its utilisations, to compare with the paper's decode-layer figures."""
    if not step.records:
        return {}
    layers = [r for r in step.records if r.get("layer", -1) >= 0]
    row = max(layers or step.records, key=lambda r: r["time_s"])
    return {k: float(row[k]) for k in ("time_s", "pcu_util", "pmu_util", "hbm_bw_util", "pcu_busy") if k in row}
