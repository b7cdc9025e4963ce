"""Model runs: one model served (prefill + decode) on each platform of a workload.

Metrics per platform P: ``model.P.latency_s``, ``.ttft_s``, ``.tpot_s``,
``.breakdown.<compute|memory|launch|collective|host>_s`` (the whole request),
``.breakdown.request.host_s`` (once per request: the stack's set-up),
``.breakdown.step.<compute|memory|launch|collective|host>_s`` (the mean decode step),
``.breakdown.request.host.<term>_s`` and ``.breakdown.step.host.<term>_s`` (the host parts
by the stack's terms, :mod:`rdusim.engine.host_runtime`; their kinds in
``extra.host_terms``),
``.tokens_per_s``, ``.weight_bytes_per_device``, ``.kv_bytes_per_device``,
``.<prefill|decode>.allreduce_s`` (mean NCCL all-reduce kernel, GPU platforms with TP > 1), ``.oom`` and
``.memory.*`` (per-device memory by :func:`rdusim.memory.device_memory`; a platform that
cannot hold the model gets ``.oom = 1``, its reason in ``extra.oom_reasons`` and no
latency). Records: one row per
kernel of the prefill step and of the first decode step, per platform.
A platform whose engine is not installed gets a note, never a number.
"""

from __future__ import annotations

from typing import Any, Mapping

from rdusim.config.formats import for_machine, with_checked_formats
from rdusim.config.model import ModelConfig, load_model
from rdusim.config.deployment import Deployment
from rdusim.config.stack_terms import term_kinds
from rdusim.config.workload import LoadedWorkload, PlatformSpec, resolve_path
from rdusim.config.workload_model import ModelWorkload
from rdusim.engine.families import family
from rdusim.engine.host_runtime import step_host_s
from rdusim.engine.inference import BREAKDOWN_KEYS, InferenceTiming, simulate_inference
from rdusim.cache import RunCache, active_cache
from rdusim.cost import request_costs, summary_lines as cost_lines   # joules and dollars (rdusim.energy, arch price:)
from rdusim.errors import InputError
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase
from rdusim.memory import device_memory
from rdusim.parallel import fork_map
from rdusim.results import RunResult, plain
from rdusim.rows.base import by_identity
from rdusim.rows.model import ModelRow, ModelScope, from_metrics as model_rows_of, rows as model_rows
from rdusim.studies import cluster_run, scaling_run, speculative_run
from rdusim.studies.part import StudyPart

RUN, SPEC, PP, OFFLOAD = ModelScope.RUN, ModelScope.SPEC, ModelScope.PP, ModelScope.OFFLOAD

def load_model_for(loaded: LoadedWorkload) -> ModelConfig:
    spec: ModelWorkload = loaded.spec
    name = spec.model
    path = resolve_path(name, loaded.file) if name.endswith((".yaml", ".yml")) else name
    return with_checked_formats(load_model(str(path)), spec.formats, loaded, "formats")


def check_platform(loaded: LoadedWorkload, name: str, cfg: ModelConfig) -> None:
    """Policy choices that only make sense together with the machine and the model."""
    plat: PlatformSpec = loaded.spec.platforms[name]
    arch = loaded.archs[name]
    key = f"platforms.{name}"
    allowed = arch.LAUNCH_MODES
    mode = loaded.launch(name)
    if mode not in allowed:
        raise InputError(loaded.file, f"{key}.launch",
                         f"one of {[m.value for m in allowed]} for {arch.kind.value} platform {name}", mode.value)
    if cfg.num_attention_heads % plat.tp or cfg.intermediate_size % plat.tp:
        raise InputError(loaded.file, f"{key}.tp",
                         f"a divisor of {cfg.name}'s num_attention_heads ({cfg.num_attention_heads}) and "
                         f"intermediate_size ({cfg.intermediate_size})", plat.tp)


def simulate_platform(loaded: LoadedWorkload, name: str, cfg: ModelConfig,
                      cache: RunCache | None = None) -> tuple[Deployment, InferenceTiming]:
    """The workload's request served on platform ``name``."""
    spec: ModelWorkload = loaded.spec
    dep = loaded.deployment(name, for_machine(cfg, loaded.archs[name]))
    return dep, simulate_inference(dep, spec.prompt_tokens, spec.output_tokens, spec.batch_size, cache)


def engine_missing(exc: ModuleNotFoundError) -> bool:
    return bool(exc.name) and exc.name.startswith("rdusim.engine.")


def run(loaded: LoadedWorkload, *, trace: bool = False, wants=None) -> RunResult:   # noqa: ARG001 (wants: every part is kept)
    spec: ModelWorkload = loaded.spec
    cfg = load_model_for(loaded)
    for name in spec.platforms:
        check_platform(loaded, name, cfg)
    cache = active_cache()
    draft = None
    if spec.speculative is not None:
        draft = speculative_run.load_draft(loaded, cfg)
    clusters: dict = {}
    if spec.clusters:                       # only a run over clusters loads their study
        clusters = cluster_run.load(loaded, cfg)
    # the platforms are independent: on the run's processes (rdusim.parallel), merged in order
    merged = StudyPart.merged(fork_map(lambda ix: _platform(loaded, cfg, ix[0], ix[1], draft, cache, trace),
                                       list(enumerate(spec.platforms))))
    rows: list[ModelRow] = merged.rows
    records, notes, events, oom_reasons = merged.records, merged.notes, merged.events, merged.oom_reasons
    if spec.scaling is not None:            # one platform resized, per weight format
        rows += model_rows(spec.scaling.platform, ModelScope.SCALING, scaling_run.run(loaded, cfg, cache))
    for name, entry in clusters.items():
        pt = cluster_run.simulate(loaded, entry, cache)
        rows += model_rows(name, PP, cluster_run.metrics(spec.batch_size, spec.output_tokens, pt, entry[1].tp))
        if pt.oom:
            notes[name] = pt.oom
            oom_reasons[f"{name}.pp"] = pt.oom
    return RunResult(workload_name=spec.name, kind="model", resolved=dict(loaded.raw),
                     archs={n: plain(a) for n, a in loaded.archs.items()}, seed=loaded.seed, rows=tuple(rows),
                     records=tuple(records),
                     extra={"model": cfg.name, "formats": cfg.fmt.label, "platforms": list(spec.platforms), "notes": notes,
                            "host_terms": {n: term_kinds(loaded.stacks[n]) for n in spec.platforms},
                            "stack_base": {n: loaded.stacks[n].base for n in spec.platforms if loaded.stacks[n].base},
                            "clusters": list(clusters), "oom_reasons": oom_reasons,
                            **({"scaling": spec.scaling.platform} if spec.scaling is not None else {}),
                            "prompt_tokens": spec.prompt_tokens, "output_tokens": spec.output_tokens,
                            "batch_size": spec.batch_size,
                            "policy": {n: {"tp": p.tp, "fusion": p.fusion.value,
                                           "launch": loaded.launch(n).value, "stack": loaded.stacks[n].name}
                                       for n, p in spec.platforms.items()}},
                     trace=tuple(events))


def _platform(loaded: LoadedWorkload, cfg: ModelConfig, index: int, name: str, draft, cache: RunCache,
              trace: bool) -> StudyPart:
    """The workload's request on one platform: memory, timing, records, the speculative run
    (``draft``), the trace (``trace``)."""
    spec: ModelWorkload = loaded.spec
    part = StudyPart()
    arch = loaded.archs[name]
    tp = spec.platforms[name].tp
    need = device_memory(loaded.deployment(name, for_machine(cfg, arch)), spec.batch_size,
                         spec.prompt_tokens + spec.output_tokens, spec.prompt_tokens)
    part.rows += model_rows(name, RUN, {**need.values(), "oom": int(not need.fits)})
    if spec.offload is not None:            # the experts offloaded: runs whether or not the whole model fits
        from rdusim.studies import offload_run
        values, cis, oom = offload_run.simulate(loaded, name, cfg, cache, index)
        part.rows += [ModelRow(name, OFFLOAD, m, v, cis.get(m)) for m, v in values.items()]
        if oom:
            part.notes[f"{name}.offload"] = oom
    if not need.fits:
        part.oom_reasons[name] = f"{name} tp{tp}: {need.reason}"
        return part
    try:
        dep, timing = simulate_platform(loaded, name, cfg, cache)
    except ModuleNotFoundError as exc:
        if not engine_missing(exc):
            raise
        part.notes[name] = f"{arch.kind.value.upper()} engine not available ({exc.name} is not installed)"
        part.rows.append(ModelRow(name, RUN, "available", 0))
        return part
    part.rows += model_rows(name, RUN, platform_metrics(spec.batch_size, spec.output_tokens, timing))
    part.rows += model_rows(name, RUN, request_costs(dep, timing, spec.prompt_tokens, spec.output_tokens,
                                                     spec.batch_size, cache))
    part.rows += model_rows(name, RUN, ideal_metrics(timing, simulate_inference(
        dep.ideal(), spec.prompt_tokens, spec.output_tokens, spec.batch_size, cache)))
    part.records += [{"platform": name, **r} for r in timing.records]
    if draft is not None:
        st = speculative_run.simulate(loaded, name, cfg, draft, cache)
        part.rows += model_rows(name, SPEC, speculative_run.metrics(spec.batch_size, spec.output_tokens, st))
        if st.oom:
            part.notes[f"{name}.spec"] = st.oom
            part.oom_reasons[f"{name}.spec"] = st.oom
    if trace:
        part.events += _trace(dep, spec.batch_size, spec.prompt_tokens, index)
    return part


def ideal_metrics(t: InferenceTiming, ideal: InferenceTiming) -> dict[str, float]:
    """How far the run is from the same request in roofline mode (rdusim.engine.roofline)."""
    return {"ideal_latency_s": ideal.latency_s, "ideal_ttft_s": ideal.ttft_s, "ideal_tpot_s": ideal.tpot_s,
            "realistic_over_ideal": t.latency_s / ideal.latency_s if ideal.latency_s > 0 else 0.0}


def platform_metrics(batch: int, output_tokens: int, t: InferenceTiming) -> dict[str, float]:
    """One platform's plain-run values by metric name (the rows of scope RUN)."""
    out = {"available": 1, "latency_s": t.latency_s, "ttft_s": t.ttft_s, "tpot_s": t.tpot_s,
           "tokens_per_s": batch * output_tokens / t.latency_s if t.latency_s > 0 else 0.0,
           "weight_bytes_per_device": t.weight_bytes_per_device,
           "kv_bytes_per_device": t.kv_bytes_per_device}
    for k in BREAKDOWN_KEYS:
        out[f"breakdown.{k}_s"] = float(t.breakdown_s.get(k, 0.0))
        out[f"breakdown.step.{k}_s"] = float(t.step_s.get(k, 0.0))
    out["breakdown.request.host_s"] = float(t.request_s.get("host", 0.0))
    for name, v in t.request_host_terms_s.items():
        out[f"breakdown.request.host.{name}_s"] = float(v)
    for name, v in t.step_host_terms_s.items():
        out[f"breakdown.step.host.{name}_s"] = float(v)
    # mean time of one tensor-parallel all-reduce kernel per phase (engines that run them as
    # kernels of their own: the GPU's NCCL calls); references/nccl.yaml checks these
    for phase in ("prefill", "decode"):
        ar = [r["duration_s"] for r in t.records if r.get("kind") == "collective" and r.get("phase") == phase
              and str(r.get("tag", "")).startswith("tp.allreduce")]
        if ar:
            out[f"{phase}.allreduce_s"] = sum(ar) / len(ar)
    return out


def _trace(dep: Deployment, batch: int, prompt_tokens: int, index: int) -> list[Mapping[str, Any]]:
    """One decode step's timeline on each platform, pids moved apart per platform."""
    graph = build_model_graph(dep.model, Phase.DECODE, batch, prompt_tokens, tp=dep.tp)
    step = family(dep.arch).graph_step(dep.arch, graph, fusion=dep.fusion, launch=dep.launch, tp=dep.tp,
                                       trace=True, host_s=step_host_s(dep.stack, dep.arch, dep.model, batch))
    return [dict(e, pid=e["pid"] + 100 * index) if "pid" in e else dict(e) for e in step.trace]


def summary(result: RunResult) -> str:
    extra = result.extra
    t = by_identity(model_rows_of(result.metrics))      # (platform, scope) -> {metric: value}
    head = (f"{result.workload_name}: {extra.get('model', '?')}, {extra.get('prompt_tokens')} in / "
            f"{extra.get('output_tokens')} out, batch {extra.get('batch_size')}")
    cols = ["latency ms", "ttft ms", "tpot ms", "tok/s"] + [f"{k} ms" for k in BREAKDOWN_KEYS]
    lines = [head, f"{'platform':<12} {'policy':<28} " + " ".join(f"{c:>13}" for c in cols)]
    for name in extra.get("platforms", []):
        pol = extra.get("policy", {}).get(name, {})
        policy = f"tp{pol.get('tp')} {pol.get('fusion')} {pol.get('launch')} {pol.get('stack', '')}".strip()
        d = t.get((name, RUN), {})
        if d.get("oom"):
            lines.append(f"{name:<12} {policy:<28} OOM: {extra.get('oom_reasons', {}).get(name, 'out of memory')}")
            continue
        if not d.get("available"):
            lines.append(f"{name:<12} {policy:<28} {extra.get('notes', {}).get(name, 'not run')}")
            continue
        vals = [d["latency_s"] * 1e3, d["ttft_s"] * 1e3, d["tpot_s"] * 1e3, d["tokens_per_s"]]
        vals += [d[f"breakdown.{k}_s"] * 1e3 for k in BREAKDOWN_KEYS]
        lines.append(f"{name:<12} {policy:<28} " + " ".join(f"{v:>13.3f}" for v in vals))
    lines += ["", "Mean decode step (us): engine (compute + memory + launch + collective) vs the stack's host work; "
              "per request (ms)",
              f"{'platform':<12} " + " ".join(f"{c:>11}" for c in ("compute", "memory", "launch", "collective",
                                                                    "engine", "host", "engine %", "request ms"))]
    for name in extra.get("platforms", []):
        d = t.get((name, RUN), {})
        if "breakdown.step.host_s" not in d:
            continue
        step = [d[f"breakdown.step.{k}_s"] * 1e6 for k in ("compute", "memory", "launch", "collective")]
        host = d["breakdown.step.host_s"] * 1e6
        engine = sum(step)
        share = 100 * engine / (engine + host) if engine + host else 0.0
        vals = step + [engine, host, share, d["breakdown.request.host_s"] * 1e3]
        lines.append(f"{name:<12} " + " ".join(f"{v:>11.1f}" for v in vals))
    lines += mechanism_lines(t, extra)
    lines += cost_lines(t, extra.get("platforms", []), RUN)
    if any((p, ModelScope.SPEC) in t for p in extra.get("platforms", [])):   # a speculative run
        lines += speculative_run.summary_lines(t, extra.get("platforms", []), extra.get("notes", {}))
    if any((p, OFFLOAD) in t for p in extra.get("platforms", [])):   # experts offloaded
        from rdusim.studies.offload_run import summary_lines as offload_lines
        lines += offload_lines(t, extra.get("platforms", []), extra.get("notes", {}))
    if extra.get("scaling"):
        lines += scaling_run.summary_lines(t, extra["scaling"])
    if extra.get("clusters"):
        lines += cluster_run.summary_lines(t, extra.get("clusters", []), extra.get("notes", {}))
    return "\n".join(lines)


def mechanism_lines(t: dict, extra: Mapping[str, Any]) -> list[str]:
    """The mean decode step by mechanism on each platform: the engine's kernels and launches,
    then each host term of its stack (release) with its kind and share of the step."""
    lines = ["", "Mean decode step by mechanism, us (share of the step); stack release; kind of each host term"]
    for name in extra.get("platforms", []):
        d = t.get((name, RUN), {})
        if "breakdown.step.host_s" not in d:
            continue
        step = sum(d[f"breakdown.step.{k}_s"] for k in BREAKDOWN_KEYS)
        kinds = extra.get("host_terms", {}).get(name, {})
        parts = [("kernels", sum(d[f"breakdown.step.{k}_s"] for k in ("compute", "memory", "collective")), ""),
                 ("launch", d["breakdown.step.launch_s"], "")]
        prefix = "breakdown.step.host."
        parts += [(k[len(prefix):-2], v, kinds.get(k[len(prefix):-2], "")) for k, v in d.items()
                  if k.startswith(prefix)]
        pol = extra.get("policy", {}).get(name, {})
        base = extra.get("stack_base", {}).get(name)
        release = pol.get("stack", "") + (f" (on {base})" if base else "")
        cells = [f"{n} {v * 1e6:.1f} ({100 * v / step if step else 0.0:.1f}%{', ' + kind if kind else ''})"
                 for n, v, kind in parts]
        lines.append(f"  {name:<12} {release}: " + ", ".join(cells))
    return lines if len(lines) > 2 else []
