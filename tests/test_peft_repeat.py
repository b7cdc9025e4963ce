"""Fine-tuning steps from three layers are the whole model's step (issue 23): the repeated
kernels (GPU) and plans (RDU) of LoRA / QLoRA / checkpointed graphs equal the whole
graph's, so a fine-tuning study never builds a 32-layer graph."""

import pytest

from rdusim.compiler import compile_plan
from rdusim.compiler.repeat_runs import compile_repeated_runs
from rdusim.config.arch import load_arch
from rdusim.config.model import load_model
from rdusim.config.policy import FusionPolicy
from rdusim.engine.gpu import repeat
from rdusim.engine.gpu.fusion_rules import partition
from rdusim.graph.opgraph import OpGraph
from rdusim.graph.peft import PeftSpec, TrainMethod
from rdusim.graph.training import training_build

SPECS = [PeftSpec(TrainMethod.LORA, rank=8),
         PeftSpec(TrainMethod.QLORA, rank=16, targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                        "up_proj", "down_proj"), checkpointing=True)]


def _graph(cfg, spec, layers, tp=1):
    ops, idle = training_build(cfg, 2, 128, tp=tp, layers=layers, peft=spec)
    return OpGraph("ft", ops, idle_weights=idle)


@pytest.mark.parametrize("spec", SPECS, ids=["lora", "qlora-ckpt"])
def test_gpu_kernels_from_three_layers(spec):
    cfg, arch = load_model("llama2-7b"), load_arch("arch/a100_80gb.yaml")
    for policy in FusionPolicy:
        got = repeat.repeated_step_kernels(_graph(cfg, spec, 3), 5, policy, arch)
        assert got is not None and got == partition(_graph(cfg, spec, 5), policy, arch)


@pytest.mark.parametrize("spec", SPECS, ids=["lora", "qlora-ckpt"])
def test_rdu_plans_from_three_layers(spec):
    cfg, arch = load_model("llama2-7b"), load_arch("arch/sn40l.yaml")
    for policy in FusionPolicy:
        plan = compile_repeated_runs(_graph(cfg, spec, 3, tp=8), 5, arch, policy, tiles=16)
        whole = compile_plan(_graph(cfg, spec, 5, tp=8), arch, policy, tiles=16)
        assert plan is not None and plan == whole and list(plan.placement.items()) == list(whole.placement.items())
