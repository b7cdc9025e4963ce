"""Number formats: bytes by hand, the format rule, the engines and the CoE study."""

import dataclasses
import math

import pytest

from rdusim.cli import main
from rdusim.config.arch import load_arch
from rdusim.config.deployment import Deployment
from rdusim.config.formats import Formats, WeightFormat, arch_at, native_rate
from rdusim.config.model import load_model
from rdusim.config.policy import FusionPolicy
from rdusim.config.workload import load_workload
from rdusim.engine.coe.switching import lone_switch_s
from rdusim.engine.gpu.fusion_rules import partition
from rdusim.engine.gpu.kernels import GemmShape, KernelClass, KernelWork, kernel_time
from rdusim.errors import InputError
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase
from rdusim.graph.tensor import DType, Tensor, TensorRole

INT8 = Formats(WeightFormat(DType.INT8))
INT4 = Formats(WeightFormat(DType.INT4, group_size=128, scale_bytes=2))
FP8 = Formats(WeightFormat(DType.FP8_E4M3), compute=DType.FP8_E4M3)


def _linear_params(cfg):
    """Elements of one rank's (tp=1) quantised weights: q/k/v/o and the MLP of every layer, by hand."""
    h, f, d = cfg.hidden_size, cfg.intermediate_size, cfg.head_dim
    qkv = h * (cfg.num_attention_heads + 2 * cfg.num_key_value_heads) * d
    per_layer = qkv + h * h + h * 2 * f + f * h
    return cfg.num_hidden_layers * per_layer, 4 * cfg.num_hidden_layers   # elements, weight tensors


def _param_bytes(cfg, formats=Formats()):
    return build_model_graph(cfg.with_formats(formats), Phase.DECODE, 1, 1).param_bytes


def test_tensor_bytes_with_group_scales():
    t = Tensor("w", (4096, 4096), DType.INT4, TensorRole.WEIGHT, scale_group=128, scale_bytes=2)
    assert t.nbytes == 4096 * 4096 / 2 + 4096 * 4096 / 128 * 2
    assert Tensor("w", (10,), DType.INT8, TensorRole.WEIGHT, scale_bytes=4).nbytes == 10 + 4   # one per tensor
    assert DType.INT4.nbytes == 0.5 and DType.FP8_E4M3.nbytes == 1 and DType.BF16.nbytes == 2


def test_int8_experts_take_half_the_bytes_of_bf16_plus_scales():
    cfg = load_model("llama2-7b")
    n, tensors = _linear_params(cfg)
    bf16 = _param_bytes(cfg)
    assert _param_bytes(cfg, INT8) == bf16 - 2 * n + 1 * n + tensors * 2     # one 2-byte scale per tensor
    assert _param_bytes(cfg, INT4) == bf16 - 2 * n + n / 2 + n / 128 * 2      # a 2-byte scale per 128
    assert _param_bytes(cfg, FP8) == _param_bytes(cfg, INT8)
    # everything else (embedding, LM head, norms) stays bf16: 262 M params for Llama-2-7B
    assert bf16 - 2 * n == 2 * (2 * cfg.vocab_size * cfg.hidden_size + (2 * cfg.num_hidden_layers + 1) * cfg.hidden_size)


def test_fp8_kv_cache_halves_the_one_kv_formula():
    cfg = load_model("llama2-7b")
    fp8 = cfg.with_formats(Formats(kv_cache=DType.FP8_E4M3))
    assert fp8.kv_cache_bytes_per_rank(1000, 8) * 2 == cfg.kv_cache_bytes_per_rank(1000, 8)
    assert fp8.kv_cache_bytes_per_token == 2 * 32 * 32 * 128 * 1
    # the graph's KV tensors follow the same format: a decode step reads half the KV bytes
    g16 = build_model_graph(cfg, Phase.DECODE, 2, 1000)
    g8 = build_model_graph(fp8, Phase.DECODE, 2, 1000)
    kv = lambda g: sum(t.nbytes for o in g.ops for t in o.inputs if t.role == TensorRole.KV_CACHE)
    assert kv(g8) * 2 == kv(g16) == 2 * cfg.kv_cache_bytes(1001)


def test_capacity_and_lone_switch_move_with_the_bytes():
    cfg = load_model("llama2-7b")
    b16, b8 = _param_bytes(cfg), _param_bytes(cfg, INT8)
    for path in ("arch/sn40l.yaml", "arch/dgx_h100.yaml", "arch/dgx_a100.yaml"):
        arch = load_arch(path)
        # a lone switch is bytes over the effective copy bandwidth plus fixed latencies
        t16, t8, t0 = (lone_switch_s(arch, 8, b) for b in (b16, b8, 1.0))
        assert (t8 - t0) / (t16 - t0) == pytest.approx(b8 / b16, rel=1e-6)


def test_coe_study_capacity_and_switch_follow_the_expert_format():
    from rdusim.studies.coe import run

    sets = [("sweep_experts", []), ("batches", 2), ("warmup_batches", 0), ("batch_sizes", [1]),
            ("footprint.max_nodes", 1)]
    res = {f: run(load_workload("tests/data/coe_small.yaml", sets + [("experts.formats.weight.dtype", f)])).metrics
           for f in ("bf16", "int8")}
    cfg = load_model("llama2-7b")
    ratio = _param_bytes(cfg, INT8) / _param_bytes(cfg)
    arch = load_arch("arch/sn40l.yaml")
    for p in ("sn40l", "dgx_h100"):
        a, b = res["bf16"], res["int8"]
        assert b[f"coe.{p}.lone_switch_s"] < a[f"coe.{p}.lone_switch_s"] * (ratio + 0.01)
        assert b[f"coe.capacity.{p}.hbm_experts"] >= math.floor(a[f"coe.capacity.{p}.hbm_experts"] / ratio) - 1
        assert b[f"coe.capacity.{p}.max_experts"] > 1.9 * a[f"coe.capacity.{p}.max_experts"]
    ddr = 8 * arch.socket.ddr.usable_bytes
    assert res["int8"]["coe.capacity.sn40l.max_experts"] == math.floor(ddr / _param_bytes(cfg, INT8))


def test_gpu_dequant_is_the_gemm_prologue_when_fused():
    cfg = load_model("llama2-7b").with_formats(INT4)
    arch = load_arch("arch/dgx_h100.yaml")
    g = build_model_graph(cfg, Phase.DECODE, 1, 64, tp=8, layers=1)
    g16 = build_model_graph(load_model("llama2-7b"), Phase.DECODE, 1, 64, tp=8, layers=1)
    fused, fused16 = partition(g, FusionPolicy.FUSED, arch), partition(g16, FusionPolicy.FUSED, arch)
    assert len(fused) == len(fused16)                       # no extra kernels
    qkv = next(k for k in fused if k.tag == "attn.qkv")
    w = next(t for o in g.ops for t in o.inputs if t.name == "L0.attn.qkv.weight")
    assert qkv.work.cls == KernelClass.GEMM and qkv.work.convert_flops == 2 * w.numel
    x_bytes = 4096 * 2 + w.shape[1] * 2                     # the activation in and out (bf16)
    assert qkv.work.hbm_bytes == pytest.approx(w.nbytes + x_bytes)   # stored int4 bytes, no bf16 weight
    unfused = partition(g, FusionPolicy.UNFUSED, arch)
    assert len(unfused) == len(partition(g16, FusionPolicy.UNFUSED, arch)) + 4   # a dequant kernel per weight
    # the prologue costs vector time inside the GEMM kernel
    with_dq = kernel_time(arch, qkv.work)
    without = kernel_time(arch, KernelWork(KernelClass.GEMM, qkv.work.flops, qkv.work.hbm_bytes, gemm=qkv.work.gemm))
    assert with_dq.compute_s > without.compute_s


def test_fp8_compute_doubles_the_h100_tensor_rate_and_a100_rejects_it():
    h100, a100, sn = (load_arch(f"arch/{a}.yaml") for a in ("dgx_h100", "dgx_a100", "sn40l"))
    assert native_rate(h100, DType.FP8_E4M3) == 1.979e15 == 2 * 989.5e12
    assert native_rate(a100, DType.FP8_E4M3) is None and native_rate(a100, DType.INT8) == 624e12
    assert native_rate(sn, DType.INT8) is None and native_rate(sn, DType.BF16) == pytest.approx(638.976e12)
    big = KernelWork(KernelClass.GEMM, 2.0 * 8192 ** 3, 3 * 8192 ** 2, gemm=GemmShape(1, 8192, 8192, 8192))
    t16 = kernel_time(h100, big)
    t8 = kernel_time(h100, dataclasses.replace(big, dtype=DType.FP8_E4M3))
    # the FP8 peak at the fraction FP8 GEMMs reach (kernel.tensor_fp8_efficiency), not bf16's
    assert t8.compute_s == pytest.approx(t16.compute_s * (989e12 * 0.8) / (1.979e15 * 0.671))
    with pytest.raises(ValueError):
        arch_at(a100, DType.FP8_E4M3)


@pytest.mark.parametrize("arch", ["arch/sn40l.yaml", "arch/dgx_h100.yaml"])
def test_quantised_weights_make_decode_faster_and_step_bytes_smaller(arch):
    from rdusim.engine.stepper import StepModel

    a = load_arch(arch)
    cfg = load_model("llama2-7b")
    s16 = StepModel(Deployment.of(a, cfg, 8)).engine_step(Phase.DECODE, 1, 256)
    s4 = StepModel(Deployment.of(a, cfg.with_formats(INT4), 8)).engine_step(Phase.DECODE, 1, 256)
    assert s4.time_s < s16.time_s and s4.kernels == s16.kernels
    assert sum(s4.bytes_by_tier.values()) < 0.45 * sum(s16.bytes_by_tier.values())


def test_format_rule_errors():
    cfg = load_model("llama2-7b")
    with pytest.raises(ValueError):                       # bf16 weights cannot feed fp8 compute
        cfg.with_formats(Formats(compute=DType.FP8_E4M3))
    with pytest.raises(ValueError):                       # fp8 weights with int8 compute
        cfg.with_formats(Formats(WeightFormat(DType.FP8_E4M3), compute=DType.INT8))
    with pytest.raises(ValueError):
        Formats(kv_cache=DType.FP32)         # int8/int4 KV exist (tests/test_kv_formats.py); fp32 does not
    with pytest.raises(InputError) as e:                  # quantised formats are for inference
        build_model_graph(cfg.with_formats(INT8), Phase.TRAIN, 1, 16, layers=1)
    assert e.value.key == "formats"


@pytest.mark.parametrize("sets, key", [
    (["formats.compute=fp8_e4m3", "formats.weight.dtype=fp8_e4m3"], "formats.compute"),   # A100 has no FP8
    (["formats.compute=fp8_e4m3"], "formats.weight.dtype"),
    (["formats.kv_cache=fp32"], "formats.kv_cache"),
    (["formats.weight.dtype=int3"], "formats.weight.dtype"),
    (["formats.weight.group_size=0", "formats.weight.dtype=int4"], "formats.weight.group_size"),
    (["formats.weight.scale_bytes=-1"], "formats.weight.scale_bytes"),
    (["formats.weights.dtype=int4"], "formats.weights"),
])
def test_bad_formats_exit_2_naming_the_key(tmp_path, capsys, sets, key):
    args = ["run", "workloads/llama2_7b_chat.yaml", "--out", str(tmp_path / "o")]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert key in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_bad_arch_rate_exits_2(tmp_path, capsys):
    args = ["run", "workloads/llama2_7b_chat.yaml", "--out", str(tmp_path / "o"),
            "--set", "arch.dgx_h100.device.tensor_fp8_flops_per_s=-5"]
    assert main(args) == 2
    assert "tensor_fp8_flops_per_s" in capsys.readouterr().err


def test_model_run_with_fp8_on_h100_end_to_end(tmp_path):
    import json

    out = tmp_path / "o"
    assert main(["run", "workloads/llama2_7b_chat.yaml", "--out", str(out), "--set", "platforms={dgx_h100: "
                 "{arch: arch/dgx_h100.yaml, tp: 8}}", "--set", "formats.weight.dtype=fp8_e4m3",
                 "--set", "formats.compute=fp8_e4m3", "--set", "formats.kv_cache=fp8_e4m3"]) == 0
    data = json.loads((out / "results.json").read_text())
    m = data["metrics"]
    cfg = load_model("llama2-7b")
    assert m["model.dgx_h100.kv_bytes_per_device"] == cfg.kv_cache_bytes_per_rank(148, 8) / 2
    assert m["model.dgx_h100.weight_bytes_per_device"] < 0.55 * _param_bytes(cfg) / 8 + 1e8


def test_moe_experts_held_idle_are_stored_at_the_weight_format():
    cfg = load_model("mixtral-8x7b")
    h, f, e, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_local_experts, cfg.num_hidden_layers
    experts = layers * e * 3 * h * f                      # gate, up and down of every expert
    # batch 1 decode runs 2 experts of 8; the 6 idle ones are held at int8 all the same
    assert _param_bytes(cfg) - _param_bytes(cfg, INT8) == experts + layers * (h * (h // cfg.num_attention_heads) * (
        cfg.num_attention_heads + 2 * cfg.num_key_value_heads) + h * h) - 2 * (2 * e + 2) * layers


def test_native_compute_picks_the_weight_format_where_the_machine_has_a_rate():
    from rdusim.config.formats import for_machine

    cfg = load_model("llama2-7b")
    h100, a100, sn = (load_arch(f"arch/{a}.yaml") for a in ("dgx_h100", "dgx_a100", "sn40l"))
    fp8 = cfg.with_formats(Formats(WeightFormat(DType.FP8_E4M3), native_compute=True))
    int8 = cfg.with_formats(Formats(WeightFormat(DType.INT8), native_compute=True))
    int4 = cfg.with_formats(Formats(WeightFormat(DType.INT4, 128), native_compute=True))
    assert for_machine(fp8, h100).fmt.compute == DType.FP8_E4M3 and not for_machine(fp8, h100).fmt.dequantises
    assert for_machine(fp8, a100).fmt.compute == DType.BF16 and for_machine(fp8, a100).fmt.dequantises
    assert for_machine(int8, a100).fmt.compute == DType.INT8
    assert for_machine(int8, sn).fmt.dequantises and for_machine(int4, h100).fmt.dequantises
    size = lambda m: build_model_graph(m, Phase.DECODE, 1, 1).param_bytes
    for m in (fp8, int8, int4):       # the bytes stored do not depend on where it runs
        assert {size(for_machine(m, a)) for a in (h100, a100, sn)} == {size(m)} != {_param_bytes(cfg)}
    with pytest.raises(ValueError):
        Formats(compute=DType.BF16, native_compute=True)
