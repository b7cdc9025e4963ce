"""FP8 as a mechanism (issue 20 item 5): activation quantisation where the stack runs it, GEMM
efficiency per format from a measurement, and an FP8 KV cache sized and timed. Hand values."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from pathlib import Path

import pytest

from rdusim.config.arch import load_arch
from rdusim.config.deployment import Deployment
from rdusim.config.formats import Formats, WeightFormat
from rdusim.config.model import load_model
from rdusim.config.policy import FusionPolicy
from rdusim.engine.gpu.fusion_rules import partition
from rdusim.engine.gpu.kernels import GemmShape, KernelClass, KernelWork, kernel_time
from rdusim.engine.stepper import StepModel
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase
from rdusim.graph.tensor import DType
from rdusim.memory import step_materialised

H100 = load_arch("arch/dgx_h100.yaml")
SN40L = load_arch("arch/sn40l.yaml")
LLAMA = load_model("llama2-7b")
FP8 = Formats(WeightFormat(DType.FP8_E4M3), compute=DType.FP8_E4M3)          # W8A8 FP8
FP8_KV = Formats(kv_cache=DType.FP8_E4M3)
H, F = 4096, 11008                                                           # Llama-2-7B hidden, MLP


def _ops(g, tag):
    return [o for o in g.ops if o.tag == tag]


# ---- the graph: one quantisation per quantised GEMM input ----
def test_each_quantised_gemm_reads_an_fp8_activation_made_by_one_quant_op():
    g = build_model_graph(LLAMA.with_formats(FP8), Phase.PREFILL, 1, 128, layers=1)
    quant = _ops(g, "act.quant")
    # qkv (after the input norm), o (attention output), gate_up (after the second norm), down
    assert [o.inputs[0].name for o in quant] == ["L0.input_norm.out", "L0.attn.merge.out",
                                                 "L0.post_attn_norm.out", "L0.mlp.hidden"]
    assert [o.flops for o in quant] == [2 * 128 * n for n in (H, H, H, F)]
    assert all(o.outputs[0].dtype == DType.FP8_E4M3 and o.bytes_written == o.inputs[0].nbytes / 2 for o in quant)
    qkv = next(o for o in g.ops if o.name == "L0.attn.qkv")
    assert qkv.inputs[0].name == "L0.input_norm.out.q" and qkv.outputs[0].dtype == DType.BF16
    # fp8 activation (128 x 4096 x 1) + fp8 weight (4096 x 12288 x 1 + one 2-byte scale)
    assert qkv.bytes_read == 128 * H + H * 3 * H + 2
    # bf16 compute, the MoE router and the LM head: nothing quantised
    assert not _ops(build_model_graph(LLAMA, Phase.PREFILL, 1, 128, layers=1), "act.quant")
    assert not [o for o in quant if "head" in o.name]


def test_gpu_fuses_the_quantisation_into_the_kernel_producing_the_input():
    g8 = build_model_graph(LLAMA.with_formats(FP8), Phase.PREFILL, 1, 128, layers=1)
    g16 = build_model_graph(LLAMA, Phase.PREFILL, 1, 128, layers=1)
    k8, k16 = partition(g8, FusionPolicy.FUSED, H100), partition(g16, FusionPolicy.FUSED, H100)
    assert len(k8) == len(k16)                                               # no extra kernels
    home = {o: k for k in k8 for o in k.ops}
    assert home["L0.input_norm.out.quant"].tag == "norm"                     # RMSNorm + quantise
    assert home["L0.post_attn_norm.out.quant"].tag == "norm"
    assert home["L0.attn.merge.out.quant"].tag == "attn"                     # attention writes fp8
    assert home["L0.mlp.hidden.quant"].tag == "mlp.gate_up"                  # SwiGLU epilogue + quantise
    norm8 = home["L0.input_norm.out.quant"]
    norm16 = next(k for k in k16 if "L0.input_norm" in k.ops)
    # the norm kernel reads x (bf16) and its weight, and writes the fp8 activation only
    assert norm8.work.hbm_bytes == 128 * H * 2 + H * 2 + 128 * H * 1
    assert norm16.work.hbm_bytes == 128 * H * 2 + H * 2 + 128 * H * 2
    qkv = next(k for k in k8 if k.tag == "attn.qkv")
    assert qkv.work.dtype == DType.FP8_E4M3 and qkv.work.convert_flops == 0
    gate_up = home["L0.mlp.hidden.quant"]
    assert gate_up.work.convert_flops == 2 * 128 * F                         # the epilogue's quantisation
    # eager: a kernel of its own per quantised input
    assert len(partition(g8, FusionPolicy.UNFUSED, H100)) == len(partition(g16, FusionPolicy.UNFUSED, H100)) + 4
    # the memory check agrees: the bf16 norm output never reaches HBM, its fp8 copy does
    mat = step_materialised(H100, g8, FusionPolicy.FUSED)
    assert "L0.input_norm.out.q" in mat.names and "L0.input_norm.out" not in mat.names


def test_fp8_gemm_time_by_hand():
    """8192^3 FP8 GEMM on the H100: 64 x 64 CTA tiles of 128 x 128, 32 waves over 132 SMs,
    each CTA 2 x 128 x 128 x 8192 FLOPs at 1,979 T / 132 per SM x 0.671 (DeepGEMM fit)."""
    w = KernelWork(KernelClass.GEMM, 2.0 * 8192 ** 3, 3 * 8192 ** 2, gemm=GemmShape(1, 8192, 8192, 8192),
                   dtype=DType.FP8_E4M3)
    t = kernel_time(H100, w)
    per_sm = 1.979e15 / 132 * 0.671
    assert t.waves == 32 and t.compute_s == pytest.approx(32 * 2 * 128 * 128 * 8192 / per_sm, rel=1e-12)
    bf16 = kernel_time(H100, dataclasses.replace(w, dtype=DType.BF16))
    # measured efficiency, not the datasheet's 2x: 1979 x 0.671 / (989 x 0.8) = 1.68x
    assert bf16.compute_s / t.compute_s == pytest.approx(1.979e15 * 0.671 / (9.89e14 * 0.8), rel=1e-12)
    # a conversion in the GEMM costs vector time on the active SMs: 1e9 FLOPs at 67 T x 0.5
    conv = kernel_time(H100, dataclasses.replace(w, convert_flops=1e9))
    assert conv.compute_s - t.compute_s == pytest.approx(1e9 / (6.7e13 * 0.5), rel=1e-9)


def test_fp8_efficiency_is_the_fit_of_the_published_measurement():
    spec = importlib.util.spec_from_file_location("fit_fp8_gemm", Path("benchmarks/fit_fp8_gemm.py"))
    fit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fit)
    assert H100.kernel.tensor_fp8_efficiency == round(fit.fit(H100), 3)
    assert load_arch("arch/dgx_h100_pcie_measured.yaml").kernel.tensor_fp8_efficiency == \
        H100.kernel.tensor_fp8_efficiency
    assert "DeepGEMM" in H100.sources["kernel.tensor_fp8_efficiency"]
    # the fitted rows come out within 7% of what was measured
    at = fit.with_efficiency(H100, H100.kernel.tensor_fp8_efficiency)
    for m, n, k, tf in fit.fitted_points():
        assert fit.model_tflops(at, m, n, k) == pytest.approx(tf, rel=0.07)


def test_an_fp8_rate_without_its_efficiency_is_bad_input():
    from rdusim.errors import InputError

    with pytest.raises(InputError) as exc:
        load_arch("arch/dgx_a100.yaml", [("device.tensor_fp8_flops_per_s", {"value": 1e15, "source": "what-if"})])
    assert exc.value.key == "kernel.tensor_fp8_efficiency"


def test_fp8_prefill_is_faster_than_bf16_by_less_than_the_measured_gemm_ratio():
    s16 = StepModel(Deployment.of(H100, LLAMA, 1)).engine_step(Phase.PREFILL, 8, 2048)
    s8 = StepModel(Deployment.of(H100, LLAMA.with_formats(FP8), 1)).engine_step(Phase.PREFILL, 8, 2048)
    speedup = s16.time_s / s8.time_s
    # attention stays bf16, norms and quantisation are vector work: below 1.68x, well above 1
    assert 1.2 < speedup < 1.979e15 * 0.671 / (9.89e14 * 0.8)
    assert s8.kernels == s16.kernels


# ---- the FP8 KV cache ----
def test_fp8_kv_cache_is_read_at_one_byte_and_dequantised_inside_attention():
    g8 = build_model_graph(LLAMA.with_formats(FP8_KV), Phase.DECODE, 2, 1000, layers=1)
    g16 = build_model_graph(LLAMA, Phase.DECODE, 2, 1000, layers=1)
    deq = _ops(g8, "attn.kv_dequant")
    kv_elems = 2 * 32 * 1001 * 128                              # batch x KV heads x context x head dim
    assert [o.flops for o in deq] == [2 * kv_elems, 2 * kv_elems] and [o.bytes_read for o in deq] == [kv_elems] * 2
    append = next(o for o in g8.ops if o.tag == "attn.kv_append")
    assert append.flops == 2 * 2 * (2 * 32 * 128)               # K and V of the new token, quantised
    k8, k16 = partition(g8, FusionPolicy.FUSED, H100), partition(g16, FusionPolicy.FUSED, H100)
    assert len(k8) == len(k16)
    a8, a16 = (next(k for k in ks if k.tag == "attn") for ks in (k8, k16))
    assert a8.work.dtype == DType.BF16 and a8.work.convert_flops == 4 * kv_elems
    # the kernel reads the cache at one byte an element instead of two
    assert a16.work.hbm_bytes - a8.work.hbm_bytes == 2 * kv_elems
    assert len(partition(g8, FusionPolicy.UNFUSED, H100)) == len(partition(g16, FusionPolicy.UNFUSED, H100)) + 2
    # the bf16 copy of the cache never reaches HBM when fused
    assert not any(n.endswith(".dequantized") for n in step_materialised(H100, g8, FusionPolicy.FUSED).names)
    assert any(n.endswith(".dequantized") for n in step_materialised(H100, g8, FusionPolicy.UNFUSED).names)


@pytest.mark.parametrize("arch", [H100, SN40L])
def test_fp8_kv_decode_moves_fewer_bytes_and_costs_its_dequantisation(arch):
    ctx = 4096
    s16 = StepModel(Deployment.of(arch, LLAMA, 8)).engine_step(Phase.DECODE, 16, ctx)
    s8 = StepModel(Deployment.of(arch, LLAMA.with_formats(FP8_KV), 8)).engine_step(Phase.DECODE, 16, ctx)
    # the KV bytes read halve: 16 x (ctx + 1) tokens x 65536 B per rank per token at bf16
    saved = sum(s16.bytes_by_tier.values()) - sum(s8.bytes_by_tier.values())
    assert saved == pytest.approx(16 * (ctx + 1) * 65536 / 2, rel=0.01)
    assert s8.flops > s16.flops and s8.time_s < s16.time_s


def test_fp8_kv_capacity_doubles_the_sequences_that_fit():
    from rdusim.memory import device_memory

    dep8 = Deployment.of(H100, LLAMA.with_formats(FP8_KV), 1)
    dep16 = Deployment.of(H100, LLAMA, 1)
    n16, n8 = (device_memory(d, 1, 4096, 128).kv_bytes for d in (dep16, dep8))
    assert n16 == 4096 * 524288 and n8 == n16 / 2
    assert math.isclose(dep8.model.kv_cache_bytes_per_token, 262144)
