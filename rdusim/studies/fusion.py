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
from typing import Optional

from rdusim.config.arch import ArchSpec
from rdusim.config.model import load_model
from rdusim.config.workload import LoadedWorkload, resolve_path
from rdusim.config.workload_fusion import FusionBenchmark, FusionWorkload
from rdusim.energy import EnergyModel, step_activity
from rdusim.engine.roofline import bench_roofline
from rdusim.engine.step import StepResult
from rdusim.errors import InputError
from rdusim.graph.opgraph import OpGraph
from rdusim.graph.phase import Phase
from rdusim.engine.families import family
from rdusim.engine.family import BenchGraphs, Family
from rdusim.memory import OutOfMemory
from rdusim.parallel import fork_map, using_jobs
from rdusim.tracing import TraceBuilder
from rdusim.results import RunResult, plain
from rdusim.rows.fusion import SPEEDUP, FusionRow, step_rows
from rdusim.studies.part import StudyPart
from rdusim.studies.fusion_summary import summary  # noqa: F401  (the study's table)
from rdusim.graph.model_graph import build_model_graph
from rdusim.engine.host_runtime import step_host_s

# the SN40L paper's modes: the study's un-prefixed metrics are those of the first platform
# whose family runs them (rdusim.engine.family.Family.fusion_runs)
PAPER_MODES = ("unfused", "fused_so", "fused_ho")


def bench_tp(loaded: LoadedWorkload, bench: FusionBenchmark, platform: str, index: int) -> int:
    tp = bench.tp if bench.tp is not None else (1 if bench.is_fft else loaded.spec.platforms[platform].tp)
    arch = loaded.archs[platform]
    devices = arch.devices_per_node
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

    return build_model_graph(bench_model(loaded, bench), bench.phase, bench.batch, bench.seq, tp=tp,
                             layers=layers or bench.layers, weight_density=bench.weight_density, origin=where)


def bench_model(loaded: LoadedWorkload, bench: FusionBenchmark):
    name = bench.model
    return load_model(str(resolve_path(name, loaded.file)) if name.endswith((".yaml", ".yml")) else name)


@dataclass
class Timeline:
    """One platform's traced steps, laid end to end (``GAP_S`` apart) on its host and sockets.
    Only TP rank 0's socket is traced: the other ranks run the same kernels at the same
    times, and the whole suite then fits the trace's event bound."""

    builder: TraceBuilder
    platform: str
    family: Optional[Family] = None      # the platform's family: it makes the step tracers
    bench: str = ""
    clock_s: float = 0.0

    GAP_S = 1e-3

    def next(self, mode: str):
        return self.family.step_tracer(self.builder, self.platform, self.clock_s, f"{self.bench} {mode}")

    def advance(self, step_s: float) -> None:
        self.clock_s += step_s + self.GAP_S


def host_step_s(loaded: LoadedWorkload, platform: str, bench: FusionBenchmark) -> float:
    """The stack's host work per step of a model benchmark (its generation loop:
    :mod:`rdusim.engine.host_runtime`; a prefill is given its ``seq`` tokens); none for a bare
    kernel such as an FFT, and none in training (no generation loop)."""
    if bench.is_fft or bench.phase == Phase.TRAIN:
        return 0.0
    inputs = bench.seq if bench.phase == Phase.PREFILL else 1
    return step_host_s(loaded.stacks[platform], loaded.archs[platform], bench_model(loaded, bench), bench.batch,
                       inputs)


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
    first_rdu = paper_platform(loaded)
    extra = {"platforms": list(spec.platforms), "first_rdu": first_rdu, "notes": notes,
             "benchmarks": [plain(b) for b in spec.benchmarks], "largest_fused_kernel": layer_util,
             "oom_reasons": oom_reasons}
    return RunResult(workload_name=spec.name, kind="fusion", resolved=dict(loaded.raw),
                     archs={n: plain(a) for n, a in loaded.archs.items()}, seed=loaded.seed, rows=tuple(rows),
                     records=tuple(records), extra=extra, trace=tracer.events() if trace else ())


def paper_platform(loaded: LoadedWorkload) -> str | None:
    """The first platform whose family runs the paper's modes (its metrics also go un-prefixed)."""
    return next((p for p in loaded.spec.platforms if _modes(loaded, p) == PAPER_MODES), None)


def _modes(loaded: LoadedWorkload, platform: str) -> tuple[str, ...]:
    arch = loaded.archs[platform]
    return tuple(r.mode for r in family(arch).fusion_runs(loaded.launch(platform)))


def bench_graphs(loaded: LoadedWorkload, bench: FusionBenchmark, tp: int, index: int) -> BenchGraphs:
    """The benchmark's step graph at ``tp``, as the families ask for it."""
    depth = 0 if bench.is_fft else bench_model(loaded, bench).num_hidden_layers
    layers = (min(bench.layers, depth) if bench.layers else depth) if depth else 0
    return BenchGraphs(bench.phase, tp, layers,
                       lambda n: build_graph(loaded, bench, tp, index) if n is None
                       else build_graph(loaded, bench, tp, index, layers=n),
                       loaded.execution.tiles, loaded.execution.buffering)


def _bench(loaded: LoadedWorkload, index: int, bench: FusionBenchmark, tracer: TraceBuilder | None,
           timelines: dict[str, Timeline], keep_records: bool) -> StudyPart:
    """One benchmark on every platform: its rows, kernel records (if ``keep_records``), notes
    and OOM reasons. ``tracer``: lay the steps of families that draw them on the platforms'
    ``timelines`` (None: no trace)."""
    spec: FusionWorkload = loaded.spec
    part = StudyPart()
    rows, records, oom_reasons = part.rows, part.records, part.oom_reasons
    first_rdu = paper_platform(loaded)
    graphs: dict[int, BenchGraphs] = {}      # by TP degree: a whole graph built once is shared
    for platform in spec.platforms:
        arch: ArchSpec = loaded.archs[platform]
        fam = family(arch)
        tp = bench_tp(loaded, bench, platform, index)
        runs = fam.fusion_runs(loaded.launch(platform))
        modes = tuple(r.mode for r in runs)
        first = platform == first_rdu
        source = graphs.setdefault(tp, bench_graphs(loaded, bench, tp, index))
        timeline = None
        if tracer is not None:
            timeline = timelines.setdefault(platform, Timeline(tracer, platform, fam))
            timeline.bench = bench.name
        try:
            steps = fam.bench_steps(arch, source, runs, host_step_s(loaded, platform, bench), timeline)
        except OutOfMemory as exc:
            _oom(rows, oom_reasons, bench.name, platform, first, modes, f"{platform} tp{tp}: {exc.reason}")
            continue
        roof = bench_roofline(source)
        ideal_s = roof.time_s(arch)
        power = EnergyModel.of(arch)
        for mode, step in steps.items():
            values = {**mode_metrics(step), "oom": 0, "ideal_s": ideal_s, "realistic_over_ideal": step.time_s / ideal_s}
            if power is not None:       # the step on its tp devices: static power over it, its FLOPs and bytes
                values["energy_j"] = tp * power.energy_j(step_activity(step, roof.dtype))
            rows += _rows(bench.name, platform, first, mode, values)
            if keep_records:
                records += [{"benchmark": bench.name, "platform": platform, "mode": mode, **r}
                            for r in step.records]
        for key, num, den in fam.fusion_speedups:
            value = steps[den].time_s / steps[num].time_s if steps[num].time_s > 0 else 0.0
            rows += _rows(bench.name, platform, first, SPEEDUP, {key: value})
        if first:
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
