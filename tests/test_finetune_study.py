"""Issue 23: the fine-tuning study (kind finetune): largest batch, memory, job time, CLI."""

import json
from dataclasses import replace

import pytest

from rdusim.cli import main
from rdusim.config.model import load_model
from rdusim.config.workload import load_workload
from rdusim.config.workload_finetune import MoeMode
from rdusim.finetune.search import largest_batch
from rdusim.graph.peft import PeftSpec, TrainMethod, trainable_weights
from rdusim.graph.train_memory import training_memory
from rdusim.graph.training import training_build
from rdusim.studies.finetune import capacity_bytes, kernel_part, memory_parts, moe_model

WORKLOAD = "workloads/finetune_mixtral_qlora.yaml"


def test_memory_parts_extrapolate_exactly():
    """Affine in the batch and in the layer count: the four small graphs give the whole model."""
    cfg = replace(load_model("llama2-7b"), num_hidden_layers=6)
    spec = PeftSpec(TrainMethod.QLORA, rank=16, checkpointing=True)
    ops, idle = training_build(cfg, 3, 96, tp=2, peft=spec)
    whole = training_memory(ops, idle, trainable_weights(ops, idle, spec)).parts()
    got = memory_parts(cfg, spec, 2, 96)(3)
    assert got == pytest.approx(whole, rel=1e-12)


def test_largest_batch_fits_and_one_more_does_not_on_every_machine_and_configuration():
    loaded = load_workload(WORKLOAD)
    spec = loaded.spec
    base = load_model(spec.model)
    for name, plat in spec.platforms.items():
        arch, stack = loaded.archs[name], loaded.stacks[name]
        capacity, slack = capacity_bytes(arch, stack.scheduler.memory_reserve_fraction)
        for mode in spec.moe:
            cfg = moe_model(base, mode)
            for data in spec.datasets.values():
                grow = memory_parts(cfg, spec.training, plat.tp, data.max_tokens)
                parts = lambda b: {**grow(b), "slack": slack}   # noqa: E731
                fit = largest_batch(parts, capacity, limit=spec.max_batch)
                total = lambda b: sum(parts(b).values())   # noqa: E731
                assert fit.batch >= 1, (name, mode)
                assert total(fit.batch) <= capacity
                if fit.binding != "batch limit":
                    assert total(fit.batch + 1) > capacity, (name, mode, fit)
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
