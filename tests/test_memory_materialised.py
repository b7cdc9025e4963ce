"""The memory check and the timed kernels agree on what is materialised (issue 20 item 3).

The memory check (rdusim.memory -> rdusim.workspace) charges an activation to HBM when a
kernel boundary of the step cuts it. The engines time the same kernels: a GPU kernel's HBM
bytes (rdusim.engine.gpu.fusion_rules) and an RDU kernel's off-chip write streams
(rdusim.compiler.placement) must move exactly the activations the memory check charges.
These tests recompute each kernel's traffic from the memory check's set and compare it with
what the engine times, for random models, batches, lengths, TP degrees and policies.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rdusim.compiler import compile_plan
from rdusim.config.arch import load_arch
from rdusim.config.deployment import Deployment
from rdusim.config.formats import Formats, WeightFormat
from rdusim.config.model import load_model
from rdusim.config.policy import FusionPolicy
from rdusim.config.workload import load_workload
from rdusim.engine.gpu.fusion_rules import partition
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase
from rdusim.graph.tensor import EXTERNAL_ROLES, DType, TensorRole
from rdusim.memory import device_memory, step_materialised
from rdusim.studies import run_study
from rdusim.workspace import materialised

H100 = load_arch("arch/dgx_h100.yaml")
A100 = load_arch("arch/dgx_a100.yaml")
SN40L = load_arch("arch/sn40l.yaml")
MODELS = ["llama2-7b", "mistral-7b", "falcon-40b", "bloom-176b", "mixtral-8x7b", "llava1.5-7b", "llama3-8b",
          "opt-13b"]
SCORE_TAGS = ("attn.score", "attn.softmax", "attn.alibi")
FORMATS = [Formats(),                                                            # the model's dtype
           Formats(WeightFormat(DType.FP8_E4M3), kv_cache=DType.FP8_E4M3, compute=DType.FP8_E4M3),  # W8A8 FP8
           Formats(WeightFormat(DType.INT4, group_size=128)),                    # W4A16: dequantised weights
           Formats(WeightFormat(DType.INT8), compute=DType.INT8)]                # W8A8 INT8


def _tp(cfg, want: int) -> int:
    kvh = cfg.num_key_value_heads
    for tp in (want, 4, 2, 1):
        if cfg.num_attention_heads % tp == 0 and cfg.intermediate_size % tp == 0 and (kvh % tp == 0 or tp % kvh == 0):
            return tp
    return 1


@st.composite
def steps(draw):
    cfg = load_model(draw(st.sampled_from(MODELS)))
    cfg = cfg.with_formats(draw(st.sampled_from(FORMATS)))
    phase = draw(st.sampled_from([Phase.PREFILL, Phase.DECODE]))
    low = cfg.vision.image_tokens + 1 if cfg.vision is not None and phase == Phase.PREFILL else 1
    seq = draw(st.integers(low, max(low, 3000)))
    batch = draw(st.integers(1, 8))
    tp = _tp(cfg, draw(st.sampled_from([1, 2, 8])))
    return build_model_graph(cfg, phase, batch, seq, tp=tp, layers=1)


def _roots(graph, kernels):
    """View tensor -> the tensor it aliases (GPU views: reshapes and slices, no kernel)."""
    in_kernel = {n for k in kernels for n in k.ops}
    alias = {}
    for op in graph.ops:
        if op.name not in in_kernel:
            for t in op.outputs:
                alias[t.name] = op.inputs[0].name
    def root(name):
        while name in alias:
            name = alias[name]
        return name
    return root


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps(), st.sampled_from(list(FusionPolicy)), st.sampled_from([H100, A100]))
def test_gpu_kernels_move_exactly_what_the_memory_check_materialises(graph, policy, arch):
    kernels = partition(graph, policy, arch)
    mat = step_materialised(arch, graph, policy)
    root = _roots(graph, kernels)
    ops = {op.name: op for op in graph.ops}
    made_in = {t.name: i for i, k in enumerate(kernels) for n in k.ops for t in ops[n].outputs}
    for i, k in enumerate(kernels):
        expected = 0.0
        for n in k.ops:
            op = ops[n]
            own = sum(t.nbytes for t in op.inputs
                      if t.role not in EXTERNAL_ROLES and made_in.get(root(t.name)) == i)
            kept = sum(t.nbytes for t in op.outputs if t.role == TensorRole.ACTIVATION and t.name not in mat.names)
            expected += max(0.0, op.bytes_read - own) + max(0.0, op.bytes_written - kept)
            # what a kernel reads from another kernel is materialised
            for t in op.inputs:
                r = root(t.name)
                if t.role not in EXTERNAL_ROLES and r in made_in and made_in[r] != i:
                    assert r in mat.names, (k.name, r)
        assert k.work.hbm_bytes == pytest.approx(expected, rel=1e-12, abs=1e-6), k.name
    scores = {t.name for op in graph.ops if op.tag in SCORE_TAGS for t in op.outputs}
    if policy == FusionPolicy.FUSED:        # FlashAttention: the scores stay on chip
        assert not scores & mat.names
    else:                                   # eager attention writes them to HBM
        assert scores <= mat.names


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps(), st.sampled_from(list(FusionPolicy)))
def test_rdu_plan_writes_exactly_what_the_memory_check_materialises(graph, policy):
    plan = compile_plan(graph, SN40L, policy)
    groups = [k.ops for k in plan.kernels]
    mat = materialised(graph.ops, groups)
    assert mat.workspace_bytes == step_materialised(SN40L, graph, policy).workspace_bytes
    ops = {op.name: op for op in graph.ops}
    read_by: dict[str, set[int]] = {}
    for i, g in enumerate(groups):
        for n in g:
            for t in ops[n].inputs:
                read_by.setdefault(t.name, set()).add(i)
    for i, (k, g) in enumerate(zip(plan.kernels, groups)):
        written = sum(st.nbytes for s in k.stages for st in s.streams if st.write)
        expected = 0.0
        for n in g:
            op = ops[n]
            acts = [t for t in op.outputs if t.role == TensorRole.ACTIVATION]
            if not acts or any(t.name in mat.names for t in acts):
                expected += sum(t.nbytes for t in op.outputs)
        assert written == pytest.approx(expected, rel=1e-12), k.name
    if policy == FusionPolicy.UNFUSED:
        scores = {t.name for op in graph.ops if op.tag in SCORE_TAGS for t in op.outputs}
        assert scores <= mat.names


def test_a_fused_rdu_layer_materialises_only_what_leaves_it():
    cfg = load_model("llama2-7b")
    g = build_model_graph(cfg, Phase.PREFILL, 1, 2048, tp=8, layers=1)
    mat = step_materialised(SN40L, g, FusionPolicy.FUSED)
    layer = {t.name for op in g.ops if op.layer == 0 for t in op.outputs if t.role == TensorRole.ACTIVATION}
    assert layer & mat.names == {"L0.residual_mlp.out"}
    # the layer's footprint: its input (the embedding) and its output, 2048 x 4096 bf16 each
    assert mat.workspace_bytes >= 2 * 2048 * 4096 * 2
    unfused = step_materialised(SN40L, g, FusionPolicy.UNFUSED)
    # unfused: the 32/8 heads' 2048 x 2048 scores and their softmax in HBM
    assert unfused.workspace_bytes == 2 * 4 * 2048 * 2048 * 2


def test_flash_attention_workspace_by_hand():
    """Llama-2-7B, batch 52, 2048-token prefill on one A100: eager attention's softmax reads
    and writes 52 x 32 x 2048 x 2048 bf16 scores (27.9 GB); FlashAttention none of it."""
    cfg = load_model("llama2-7b")
    g = build_model_graph(cfg, Phase.PREFILL, 52, 2048, tp=1, layers=1)
    eager = step_materialised(A100, g, FusionPolicy.UNFUSED)
    assert eager.workspace_bytes == 2 * 52 * 32 * 2048 * 2048 * 2
    flash = step_materialised(A100, g, FusionPolicy.FUSED)
    assert not any(n.startswith("L0.attn.scores") or n.startswith("L0.attn.probs") for n in flash.names)
    # the largest fused kernel: transpose + RoPE + KV append reads the QKV GEMM's output and
    # writes the transposed heads and the roped Q and K (tokens x 4096 bf16 each, QKV 3x)
    tokens = 52 * 2048
    assert flash.workspace_bytes == tokens * 4096 * 2 * (3 + 3 + 1 + 1)


def _a100_run(batch, prompt, out):
    return load_workload("workloads/llama2_7b_chat_a100.yaml",
                         [("batch_size", batch), ("prompt_tokens", prompt), ("output_tokens", out),
                          ("platforms.dgx_a100.tp", 1)])


@pytest.mark.parametrize("batch,prompt,out", [(52, 2048, 128), (60, 128, 2048)])
def test_tensorrt_llm_a100_configurations_fit_one_a100(batch, prompt, out):
    """Configurations TensorRT-LLM publishes for Llama-2-7B on one A100 80GB fit in memory."""
    loaded = _a100_run(batch, prompt, out)
    dep = loaded.deployment("dgx_a100", load_model("llama2-7b"))
    need = device_memory(dep, batch, prompt + out, prompt)
    assert need.fits, need.reason
    assert need.tiers[0].usable_bytes == 80 * 2**30 - 2e9
    # KV: 524288 B per token of Llama-2-7B, at the final context
    assert need.kv_bytes == batch * (prompt + out) * 524288


def test_batch60_128_2048_runs_on_one_a100():
    r = run_study(_a100_run(60, 128, 2048))
    assert r.metrics["model.dgx_a100.oom"] == 0 and r.metrics["model.dgx_a100.latency_s"] > 0


def test_bloom_176b_tp1_on_one_h100_is_still_oom():
    dep = Deployment.of(H100, load_model("bloom-176b"), 1)
    need = device_memory(dep, 1, 148, 128)
    assert not need.fits and need.weights_bytes > 350e9
    assert "HBM needs" in need.reason
