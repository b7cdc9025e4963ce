"""Issue 23: the fine-tuning study (kind finetune): largest batch, memory, job time, CLI."""

import json
from dataclasses import replace

import pytest

from rdusim.cli import main
from rdusim.config.arch import load_arch
from rdusim.config.execution import ExecutionConfig
from rdusim.config.policy import FusionPolicy
from rdusim.engine.families import family
from rdusim.graph.opgraph import OpGraph
from rdusim.workspace import materialised
from rdusim.config.model import load_model
from rdusim.config.workload import load_workload
from rdusim.config.workload_finetune import MoeMode
from rdusim.graph.peft import PeftSpec, TrainMethod, trainable_weights
from rdusim.graph.train_memory import training_memory
from rdusim.graph.training import training_build
from rdusim.studies.finetune import job_fit, kernel_part, memory_parts, moe_model

WORKLOAD = "workloads/finetune_mixtral_qlora.yaml"


@pytest.mark.parametrize("ckpt", [False, True])
@pytest.mark.parametrize("machine", [None, "arch/a100_80gb.yaml", "arch/sn40l.yaml"])
def test_memory_parts_extrapolate_exactly(machine, ckpt):
    """Affine in the batch and in the layer count: the four small graphs give the whole model,
    with every activation saved or only those the machine's kernels materialise."""
    cfg = replace(load_model("llama2-7b"), num_hidden_layers=6)
    spec = PeftSpec(TrainMethod.QLORA, rank=16, checkpointing=ckpt)
    cut = None
    if machine is not None:
        arch = load_arch(machine)
        cut = lambda g: materialised(g.ops, family(arch).kernel_ops(arch, g, FusionPolicy.FUSED,   # noqa: E731
                                                                    ExecutionConfig())).names
    ops, idle = training_build(cfg, 3, 96, tp=2, peft=spec)
    kept = cut(OpGraph("whole", ops, idle_weights=idle)) if cut else None
    whole = training_memory(ops, idle, trainable_weights(ops, idle, spec), kept).parts()
    got = memory_parts(cfg, spec, 2, 96, cut)(3)
    assert got == pytest.approx(whole, rel=1e-12)


@pytest.mark.parametrize("machine", ["arch/a40.yaml", None])
def test_moe_memory_extrapolates_exactly_under_flash_attention(machine):
    """Mixtral (whose last layer's kernels differ from a middle one's under the GPU's fused
    cut), FlashAttention-2's backward, checkpointing: the small graphs give the whole."""
    cfg = replace(load_model("mixtral-8x7b"), num_hidden_layers=6)
    spec = PeftSpec(TrainMethod.QLORA, rank=16, targets=("gate_proj", "up_proj", "down_proj", "router"),
                    checkpointing=True)
    cut = None
    if machine is not None:
        arch = load_arch(machine)
        cut = lambda g: materialised(g.ops, family(arch).kernel_ops(arch, g, FusionPolicy.FUSED,   # noqa: E731
                                                                    ExecutionConfig())).names
    ops, idle = training_build(cfg, 3, 128, peft=spec, flash_attention=True)
    kept = cut(OpGraph("whole", ops, idle_weights=idle)) if cut else None
    whole = training_memory(ops, idle, trainable_weights(ops, idle, spec), kept).parts()
    got = memory_parts(cfg, spec, 1, 128, cut, flash=True)(3)
    assert got == pytest.approx(whole, rel=1e-12)


def test_saved_activations_follow_the_kernel_cut_and_bitsandbytes_dequant_is_its_own_kernel():
    """Fused kernels keep their internals (a GEMM epilogue's input, a norm chain's middle)
    off memory, so less is saved than the graph's every forward tensor. (This graph's attention
    backward is the eager one: it reads the forward's scores and probabilities, kept under any
    cut; FlashAttention-2's recompute: tests/test_flash_backward.py.)"""
    cfg = replace(load_model("llama2-7b"), num_hidden_layers=2)
    arch = load_arch("arch/a100_80gb.yaml")
    spec = PeftSpec(TrainMethod.QLORA, rank=16)
    ops, idle = training_build(cfg, 2, 256, peft=spec)
    graph = OpGraph("g", ops, idle_weights=idle)
    kernels = family(arch).kernel_ops(arch, graph, FusionPolicy.FUSED, ExecutionConfig())
    names = materialised(ops, kernels).names
    dequant_kernels = [k for k in kernels if any(n.endswith(".dequant") for n in k)]
    assert dequant_kernels and all(len(k) == 1 for k in dequant_kernels)     # not a GEMM prologue
    saved = training_memory(ops, idle, trainable_weights(ops, idle, spec), names).activation_bytes
    assert saved < training_memory(ops, idle, trainable_weights(ops, idle, spec)).activation_bytes


def test_largest_batch_fits_and_one_more_does_not_on_every_machine_and_configuration():
    """The study's own search (its memory with the platform's kernel cut), on every platform,
    dataset and MoE mode of the shipped workload."""
    loaded = load_workload(WORKLOAD)
    spec = loaded.spec
    base = load_model(spec.model)
    for name in spec.platforms:
        for mode in spec.moe:
            cfg = moe_model(base, mode)
            for data in spec.datasets.values():
                fit, capacity = job_fit(loaded, name, cfg, data)
                grow = fit.parts_of
                assert fit.batch >= 1, (name, mode)
                assert sum(grow(fit.batch).values()) <= capacity
                if fit.binding != "batch limit":
                    assert sum(grow(fit.batch + 1).values()) > capacity, (name, mode, fit)
                else:
                    assert fit.batch == spec.max_batch


def test_dense_moe_computes_every_expert():
    m = load_model("mixtral-8x7b")
    assert moe_model(m, MoeMode.DENSE).num_experts_per_tok == m.num_local_experts
    assert moe_model(m, MoeMode.SPARSE) is m
    llama = load_model("llama2-7b")
    assert moe_model(llama, MoeMode.DENSE) is llama


def test_kernel_parts_by_name():
    assert kernel_part("L3.attn.qkv.rc+2") == "recompute"
    assert kernel_part("L3.attn.qkv.weight.dequant.bwd") == "dequant"
    assert kernel_part("L3.mlp.down.bwd_dx") == "backward"
    assert kernel_part("L3.optim") == "optimizer" and kernel_part("optim") == "optimizer"
    assert kernel_part("L3.input_norm+1") == "forward"


TINY = ["--set", "datasets={tiny: {queries: 1000, median_tokens: 48, sigma: 0.5, max_tokens: 128}}",
        "--set", "platforms={a40: {arch: arch/a40.yaml, tp: 1, stack: hf_peft}, sn40l: {arch: arch/sn40l.yaml, tp: 8}}",
        "--set", "quadrature_points=2", "--set", "max_batch=64"]


def test_cli_end_to_end(tmp_path, capsys):
    assert main(["run", WORKLOAD, "--out", str(tmp_path), "--jobs", "1", *TINY]) == 0
    out = capsys.readouterr().out
    assert "max batch" in out and "a40" in out and "sn40l" in out
    data = json.loads((tmp_path / "results.json").read_text())
    m = data["metrics"]
    for p in ("a40", "sn40l"):
        for mode in ("sparse", "dense"):
            k = f"finetune.{p}.tiny.{mode}"
            assert m[f"{k}.oom"] == 0 and 1 <= m[f"{k}.max_batch"] <= 64
            assert m[f"{k}.job_hours"] == pytest.approx(m[f"{k}.steps"] * m[f"{k}.step_s"] / 3600)
            assert m[f"{k}.queries_per_s"] == pytest.approx(m[f"{k}.max_batch"] / m[f"{k}.step_s"])
            # no step beats its roofline
            assert m[f"{k}.step_s"] >= m[f"{k}.ideal_step_s"] > 0
            assert m[f"{k}.realistic_over_ideal"] == pytest.approx(m[f"{k}.step_s"] / m[f"{k}.ideal_step_s"])
            assert sum(v for kk, v in m.items() if kk.startswith(f"{k}.split.")) == pytest.approx(m[f"{k}.step_s"],
                                                                                               rel=0.5)
    # dense MoE computes twice... four times the expert work of top-2 of 8: slower per step at one batch
    assert data["extra"]["binding"]["a40.tiny.sparse"]
    # the report: the jobs table and the throughput chart
    assert main(["report", str(tmp_path)]) == 0
    assert (tmp_path / "figures" / "finetune_throughput.png").is_file()
    table = (tmp_path / "tables" / "finetune_jobs.csv").read_text()
    assert "a40,tiny,sparse" in table and "sn40l,tiny,dense" in table


@pytest.mark.parametrize("override,key", [
    ("model=llama2-7b", "moe"),                                   # dense MoE on a dense model
    ("training.method=bitfit", "training.method"),               # Mixtral has no biases
    ("datasets={d: {queries: 10, median_tokens: 900, sigma: 0.5, max_tokens: 100}}", "median_tokens"),
    ("training.targets=[qkv]", "targets"),
    ("platforms.a40.tp=3", "platforms.a40.tp"),
])
def test_bad_input_exits_2(override, key, tmp_path, capsys):
    assert main(["run", WORKLOAD, "--out", str(tmp_path), "--set", override]) == 2
    err = capsys.readouterr().err
    assert key in err and "Traceback" not in err


def _step_and_shares(machine: str, tp: int, launch):
    from rdusim.engine.family import BenchGraphs, FusionRun
    from rdusim.finetune.split import KernelShares
    from rdusim.graph.phase import Phase

    cfg = replace(load_model("llama2-7b"), num_hidden_layers=5)
    spec = PeftSpec(TrainMethod.QLORA, rank=16, targets=("q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"),
                    checkpointing=True)
    arch, ex = load_arch(machine), ExecutionConfig()

    def graph(n):
        ops, idle = training_build(cfg, 2, 256, tp=tp, layers=n, peft=spec)
        return OpGraph("g", ops, idle_weights=idle)

    fam = family(arch)
    step = fam.bench_steps(arch, BenchGraphs(Phase.TRAIN, tp, 5, graph, ex.tiles, ex.buffering),
                           (FusionRun("step", FusionPolicy.FUSED, launch),), 0.0)["step"]
    tmpl = graph(3)
    return step, KernelShares(tmpl.ops, fam.kernel_ops(arch, tmpl, FusionPolicy.FUSED, ex), arch, 5, 3)


@pytest.mark.parametrize("machine,tp,launch", [("arch/sn40l.yaml", 8, "ho"), ("arch/a40.yaml", 1, "eager")])
def test_split_sums_to_the_step_and_a_fused_dequant_is_charged_to_dequant(machine, tp, launch):
    """Each record's time split among its member ops by roofline time: the parts and the
    exposed rest add up to the step; every record is found in the template's cut; on the RDU
    (a layer's recompute, dequant and backward in one kernel) the dequant share is not zero
    where the leading-op rule put none there, and the forward is not charged the dequant."""
    from rdusim.config.policy import LaunchMode
    from rdusim.finetune.split import kernel_part, lead_op, split

    step, shares = _step_and_shares(machine, tp, LaunchMode(launch))
    got = split(step, shares)
    assert sum(got.values()) == pytest.approx(step.time_s, rel=1e-9)
    kernels = [r for r in step.records if r.get("ops", 1) and r.get("kind") != "host"]
    assert all(shares.shares(str(r["name"])) is not None for r in kernels), \
        [r["name"] for r in kernels if shares.shares(str(r["name"])) is None]
    for r in kernels:
        assert sum(shares.shares(str(r["name"])).values()) == pytest.approx(1.0)
    old = split(step)
    assert sum(old.values()) == pytest.approx(step.time_s, rel=1e-9)
    assert got["dequant"] > 0
    if machine == "arch/sn40l.yaml":     # fused kernels led by a forward/recompute op held the dequant
        assert old["dequant"] < got["dequant"]
        mixed = [r for r in kernels if kernel_part(lead_op(str(r["name"]))) != "dequant"
                 and shares.shares(str(r["name"]))["dequant"] > 0]
        assert mixed
    else:                                # bitsandbytes' dequant is its own kernel: the same either way
        assert old["dequant"] == pytest.approx(got["dequant"])
