"""Fine-tuning jobs: the largest batch that fits each platform, and what a job takes there.

For each platform P, dataset D and MoE mode M (``sparse``: the model's top-k experts per
token; ``dense``: every expert), metrics ``finetune.P.D.M.<metric>``:

- ``max_batch``: the largest batch whose training step fits a device when every query of
  the batch is padded to the dataset's longest (``rdusim.finetune.search``), ``oom`` = 1 when
  not even one query fits (then nothing else); ``memory.<weights|gradients|optimizer|
  activations|slack>_bytes`` at that batch and ``memory.capacity_bytes`` (the device's
  usable HBM, plus its spill tier where it has one); which item binds is in
  ``extra.binding``;
- ``step_s``: the expected step at that batch over the padded length's exact distribution
  (``rdusim.finetune.dataset``, ``quadrature_points`` lengths, each step simulated by the
  platform's family as the fusion study's steps are); ``queries_per_s``; ``steps`` of the
  job; ``job_hours``;
- ``split.<forward|backward|recompute|optimizer|dequant>_s``: kernel seconds of the step at
  the middle quadrature point by what the kernels compute, a fused kernel's time split among
  its member ops by their roofline times (``rdusim.finetune.split``), ``split.exposed_s`` the
  rest of that step (launch gaps, host work).

Memory is read off the training graph (``rdusim.graph.train_memory``), counting only the
activations the platform's kernels write out (the kernel cut its timing uses,
``Family.kernel_ops``, ``rdusim.workspace``): it is affine in the
batch (every activation has the batch as a dimension; weights, gradients and optimizer
states do not) and in the layer count (every decoder layer adds the same, the recompute
peak of checkpointing is one layer's), so it is computed from graphs of one and two
queries and three and four layers, exactly (with two, the one layer added would be the
last, whose kernels can differ from a middle one's).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Mapping

from rdusim.config.checks import model_of
from rdusim.config.model import ModelConfig
from rdusim.config.policy import FusionPolicy
from rdusim.config.stack import AttentionBackward
from rdusim.config.offload import RoutingDist
from rdusim.config.workload import LoadedWorkload, resolve_path
from rdusim.config.workload_finetune import FinetuneWorkload, MoeMode
from rdusim.engine.family import BenchGraphs, FusionRun
from rdusim.engine.families import family
from rdusim.finetune.dataset import job_time
from rdusim.finetune.expert_load import expert_load, label
from rdusim.engine.offload.routing import load_trace
from rdusim.finetune.search import Fit, largest_batch
from rdusim.finetune.split import SPLIT, KernelShares, kernel_part, split  # noqa: F401 (kernel_part: tests)
from rdusim.engine.roofline import bench_roofline
from rdusim.graph.opgraph import OpGraph
from rdusim.graph.peft import PeftSpec, trainable_weights
from rdusim.graph.phase import Phase
from rdusim.graph.train_memory import training_memory
from rdusim.graph.training import training_build
from rdusim.memory import OutOfMemory
from rdusim.parallel import fork_map
from rdusim.results import RunResult, plain
from rdusim.rows.finetune import FinetuneRow, from_metrics as finetune_rows_of
from rdusim.studies.part import StudyPart
from rdusim.workspace import materialised
from rdusim.cost import job_rows  # dollars and joules of the job (arch price:, power:)

SPLIT_TEMPLATE_LAYERS = 3      # the template graph whose kernel cut splits fused kernels (rdusim.finetune.split)


def run(loaded: LoadedWorkload, *, trace: bool = False, wants=None) -> RunResult:   # noqa: ARG001
    spec: FinetuneWorkload = loaded.spec
    cfg = model_of(loaded, spec.model, "model")
    profile = _expert_profile(loaded, cfg)
    merged = StudyPart.merged(fork_map(lambda name: _platform(loaded, cfg, name, profile), list(spec.platforms)))
    binding = dict(merged.keyed)
    return RunResult(workload_name=spec.name, kind="finetune", resolved=dict(loaded.raw),
                     archs={n: plain(a) for n, a in loaded.archs.items()}, seed=loaded.seed,
                     rows=tuple(merged.rows), records=tuple(merged.records),
                     extra={"model": cfg.name, "platforms": list(spec.platforms), "datasets": list(spec.datasets),
                            "moe": [m.value for m in spec.moe], "training": _training_label(spec.training),
                            "expert_load": {m.value: label(spec.routing, m == MoeMode.DENSE) for m in spec.moe}
                            if cfg.is_moe else {},
                            "binding": binding, "oom_reasons": merged.oom_reasons, "notes": merged.notes,
                            "policy": {n: {"tp": p.tp, "launch": loaded.launch(n).value,
                                           "stack": loaded.stacks[n].name} for n, p in spec.platforms.items()}})


def moe_model(cfg: ModelConfig, mode: MoeMode, profile: tuple[float, ...] | None = None) -> ModelConfig:
    """The model as the mode trains it: dense routes every token to every expert; sparse
    spreads its tokens by ``profile`` (a routing model's, rdusim.finetune.expert_load; None:
    the expected load)."""
    if mode == MoeMode.DENSE and cfg.is_moe:
        return replace(cfg, num_experts_per_tok=cfg.num_local_experts)
    if profile is not None and cfg.is_moe:
        return replace(cfg, expert_load=profile)
    return cfg


def _expert_profile(loaded: LoadedWorkload, cfg: ModelConfig) -> tuple[float, ...] | None:
    """The workload's routing model as a sparse layer's expert shares (None: expected load)."""
    spec: FinetuneWorkload = loaded.spec
    r = spec.routing
    if r is None or not cfg.is_moe:
        return None
    trace = None
    if r.distribution is RoutingDist.TRACE:
        trace = load_trace(str(resolve_path(r.trace, loaded.file)), cfg.num_hidden_layers, cfg.num_local_experts,
                           cfg.num_experts_per_tok)
    return expert_load(r, cfg.num_local_experts, cfg.num_experts_per_tok, loaded.seed, trace)


def memory_parts(cfg: ModelConfig, peft: PeftSpec, tp: int, tokens: int,
                 cut: Callable[[OpGraph], frozenset[str]] | None = None,
                 flash: bool = False) -> Callable[[int], dict[str, float]]:
    """Bytes per memory item of one device at batch ``b`` (queries padded to ``tokens``),
    for the whole model, from four small graphs (see the module docstring); ``cut(graph)``:
    the activations the machine's kernels materialise (None: every one)."""
    def at(batch: int, layers: int) -> dict[str, float]:
        graph = _graph(cfg, peft, batch, tokens, tp, layers, flash)
        ops, idle = list(graph.ops), list(graph.idle_weights)
        kept = cut(graph) if cut is not None else None
        return training_memory(ops, idle, trainable_weights(ops, idle, peft), kept).parts()

    depth = cfg.num_hidden_layers
    if depth <= 4:
        one, two = at(1, depth), at(2, depth)
    else:   # a middle layer added: three layers (first, middle, last) and four
        (a1, a2), (b1, b2) = ((at(b, 3), at(b, 4)) for b in (1, 2))
        one = {k: a2[k] + (depth - 4) * (a2[k] - a1[k]) for k in a1}
        two = {k: b2[k] + (depth - 4) * (b2[k] - b1[k]) for k in b1}
    return lambda b: {k: one[k] + (b - 1) * (two[k] - one[k]) for k in one}


def capacity_bytes(arch, slack_fraction: float) -> tuple[float, float]:
    """(bytes a job may fill on one device, of which the allocator slack): the usable HBM
    less the stack's declared slack, plus the spill tier where the machine has one."""
    hbm = arch.device_hbm.usable_bytes
    spill = arch.spill_tier.usable_bytes if arch.spill_tier is not None else 0.0
    return hbm + spill, hbm * slack_fraction


def job_fit(loaded: LoadedWorkload, name: str, cfg: ModelConfig, data) -> tuple[Fit, float]:
    """(the largest batch of ``data``'s job that fits platform ``name``, the capacity) with
    every query padded to the dataset's longest, activations as the platform's kernels
    materialise them."""
    spec: FinetuneWorkload = loaded.spec
    arch, stack, tp = loaded.archs[name], loaded.stacks[name], spec.platforms[name].tp
    fam = family(arch)
    capacity, slack = capacity_bytes(arch, stack.scheduler.memory_reserve_fraction)

    def cut(graph: OpGraph) -> frozenset[str]:     # what the step's kernels write to memory
        return materialised(graph.ops, fam.kernel_ops(arch, graph, fusion_of(loaded, name), loaded.execution)).names

    grow = memory_parts(cfg, spec.training, tp, data.max_tokens, cut, flash_attention(stack))
    return largest_batch(lambda b: {**grow(b), "slack": slack}, capacity, limit=spec.max_batch), capacity


def _platform(loaded: LoadedWorkload, base: ModelConfig, name: str,
              profile: tuple[float, ...] | None = None) -> StudyPart:
    spec: FinetuneWorkload = loaded.spec
    part = StudyPart()
    arch, stack, tp = loaded.archs[name], loaded.stacks[name], spec.platforms[name].tp
    fam = family(arch)
    run_ = FusionRun("step", fusion_of(loaded, name), loaded.launch(name))
    host_s = stack.host.per_step_s
    flash = flash_attention(stack)
    for mode in spec.moe:
        cfg = moe_model(base, mode, profile)
        for dname, data in spec.datasets.items():
            at = f"{name}.{dname}.{mode.value}"

            def row(metric: str, value: float) -> None:
                part.rows.append(FinetuneRow(name, dname, mode.value, metric, value))

            fit, capacity = job_fit(loaded, name, cfg, data)
            part.keyed[at] = fit.binding
            row("oom", int(fit.batch == 0))
            for item, v in fit.parts_at_limit.items():
                row(f"memory.{item}_bytes", v)
            row("memory.capacity_bytes", capacity)
            if fit.batch == 0:
                part.oom_reasons[at] = (f"one query of {data.max_tokens} tokens needs "
                                        f"{sum(fit.parts_at_limit.values()) / 2**30:.1f} GiB per {arch.DEVICE}, "
                                        f"{capacity / 2**30:.1f} GiB usable ({fit.binding} largest)")
                continue
            row("max_batch", fit.batch)
            steps: dict[int, object] = {}
            roofs: dict[int, float] = {}        # each padded length's step in roofline terms

            def step_s(batch: int, length: int) -> float:
                graphs = BenchGraphs(Phase.TRAIN, tp, cfg.num_hidden_layers,
                                     lambda n: _graph(cfg, spec.training, batch, length, tp, n, flash),
                                     loaded.execution.tiles, loaded.execution.buffering)
                steps[length] = got = fam.bench_steps(arch, graphs, (run_,), host_s)["step"]
                roofs[length] = bench_roofline(graphs).time_s(arch)
                return got.time_s

            try:
                jt = job_time(data, fit.batch, step_s, spec.quadrature_points)
            except OutOfMemory as exc:          # the family's own memory rule refused the step
                part.oom_reasons[at] = str(exc)
                row("engine_oom", 1)
                continue
            row("step_s", jt.step_s)
            ideal = sum(p * roofs[n] for n, p in data.padded_lengths(fit.batch, spec.quadrature_points))
            row("ideal_step_s", ideal)
            row("realistic_over_ideal", jt.step_s / ideal if ideal > 0 else 0.0)
            row("queries_per_s", jt.queries_per_s)
            row("steps", jt.steps)
            row("job_hours", jt.job_s / 3600)
            for k, v in job_rows(arch, tp, jt, data.padded_lengths(fit.batch, spec.quadrature_points), steps,
                                 cfg.fmt.compute).items():
                row(k, v)
            mid = sorted(steps)[len(steps) // 2]
            for k, v in split(steps[mid], _shares(loaded, name, cfg, fit.batch, mid)).items():
                row(f"split.{k}_s", v)
    return part


def _shares(loaded: LoadedWorkload, name: str, cfg: ModelConfig, batch: int, length: int) -> KernelShares:
    """The share of each part in each kernel of the platform's cut of a few-layer template
    of the step (rdusim.finetune.split)."""
    spec: FinetuneWorkload = loaded.spec
    arch, tp = loaded.archs[name], spec.platforms[name].tp
    n = min(SPLIT_TEMPLATE_LAYERS, cfg.num_hidden_layers)
    graph = _graph(cfg, spec.training, batch, length, tp, n, flash_attention(loaded.stacks[name]))
    kernels = family(arch).kernel_ops(arch, graph, fusion_of(loaded, name), loaded.execution)
    return KernelShares(graph.ops, kernels, arch, cfg.num_hidden_layers, n)


def fusion_of(loaded: LoadedWorkload, name: str) -> FusionPolicy:
    """The kernel cut platform ``name`` runs the step as: its stack's own (eager PyTorch:
    unfused), else the platform's ``fusion``."""
    stack = loaded.stacks[name]
    return stack.kernel_fusion if stack.kernel_fusion is not None else loaded.spec.platforms[name].fusion


def flash_attention(stack) -> bool:
    """The stack's attention backward recomputes the scores (FlashAttention-2)."""
    return stack.attention_backward == AttentionBackward.RECOMPUTE


def _graph(cfg: ModelConfig, peft: PeftSpec, batch: int, length: int, tp: int, layers, flash: bool = False) -> OpGraph:
    ops, idle = training_build(cfg, batch, length, tp=tp, layers=layers, peft=peft, flash_attention=flash)
    return OpGraph(f"{cfg.name} {peft.method.value} b{batch} s{length}", ops, idle_weights=idle)


def _training_label(t: PeftSpec) -> str:
    head = t.method.value
    if t.method.has_adapters:
        head += f" r{t.rank} alpha {t.alpha:g} on {', '.join(t.targets)}"
    return head + (", gradient checkpointing" if t.checkpointing else "")


def summary(result: RunResult) -> str:
    extra = result.extra
    rows: Mapping = {}
    for r in finetune_rows_of(result.metrics):
        rows.setdefault((r.platform, r.dataset, r.moe), {})[r.metric] = r.value
    lines = [f"{result.workload_name}: {extra.get('model')} fine-tuning, {extra.get('training')}"]
    lines += [f"  expert load, {m}: {how}" for m, how in extra.get("expert_load", {}).items()]
    lines.append(f"{'platform':<12} {'dataset':<10} {'moe':<7} {'max batch':>9} {'binds':<12} {'step s':>8} "
                 f"{'queries/s':>10} {'steps':>7} {'hours':>8} {'$/job':>8} {'kWh':>7}  "
                 "fwd/bwd/recompute/optim/dequant %")
    for p in extra.get("platforms", []):
        for d in extra.get("datasets", []):
            for m in extra.get("moe", []):
                v = rows.get((p, d, m), {})
                at = f"{p}.{d}.{m}"
                if v.get("oom") or v.get("engine_oom"):
                    lines.append(f"{p:<12} {d:<10} {m:<7} OOM: {extra.get('oom_reasons', {}).get(at, '')}")
                    continue
                parts = [v.get(f"split.{k}_s", 0.0) for k in SPLIT]
                total = sum(parts) or 1.0
                shares = "/".join(f"{100 * x / total:.0f}" for x in parts)
                lines.append(f"{p:<12} {d:<10} {m:<7} {int(v['max_batch']):>9} "
                             f"{extra.get('binding', {}).get(at, ''):<12} {v['step_s']:>8.3f} "
                             f"{v['queries_per_s']:>10.2f} {int(v['steps']):>7} {v['job_hours']:>8.2f}"
                             + (f" {v['job_usd']:>8.2f}" if "job_usd" in v else f" {'no price':>8}")
                             + (f" {v['job_energy_j'] / 3.6e6:>7.2f}" if "job_energy_j" in v else f" {'-':>7}")
                             + f"  {shares}")
    return "\n".join(lines)
