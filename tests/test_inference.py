"""The one inference path on both machines: request + prefill + decode steps, the stack's
host costs in the form of their mechanism, the decode interpolation rule, one KV formula."""

import dataclasses

import numpy as np
import pytest

from rdusim.config.arch import load_arch
from rdusim.config.deployment import Deployment
from rdusim.config.execution import ExecutionConfig
from rdusim.config.model import load_model
from rdusim.config.policy import LaunchMode
from rdusim.config.stack import HostCosts, load_stack
from rdusim.engine.inference import BREAKDOWN_KEYS, simulate_inference
from rdusim.cache import RunCache
from rdusim.engine.stepper import StepModel
from rdusim.graph.phase import Phase

H100 = load_arch("arch/dgx_h100.yaml")
A100 = load_arch("arch/dgx_a100.yaml")
SN40L = load_arch("arch/sn40l.yaml")
CFG = load_model("llama2-7b")
CACHE = RunCache()


def dep(arch=H100, tp=8, **kw):
    return Deployment.of(arch, CFG, tp, **kw)


def run(d, out=20, batch=1, prompt=128):
    return simulate_inference(d, prompt, out, batch, CACHE)


def with_host(d, **costs):
    return dataclasses.replace(d, stack=dataclasses.replace(d.stack, host=HostCosts(**costs)))


@pytest.mark.parametrize("arch", [H100, SN40L], ids=["gpu", "rdu"])
def test_latency_is_request_plus_ttft_plus_decode_steps_and_breakdown_sums(arch):
    t = run(dep(arch))
    assert t.latency_s == pytest.approx(t.ttft_s + 19 * t.tpot_s)
    assert set(t.breakdown_s) == set(BREAKDOWN_KEYS)
    assert sum(t.breakdown_s.values()) == pytest.approx(t.latency_s, rel=1e-12)
    assert sum(t.step_s.values()) == pytest.approx(t.tpot_s, rel=1e-12)
    assert all(v >= 0 for v in t.breakdown_s.values())
    assert t.weight_bytes_per_device == pytest.approx(6.74e9 * 2 / 8, rel=0.02)
    # one KV formula: 2 (K, V) x 32 layers x 4 KV heads per rank x 128 dims x 2 bytes x 148 tokens
    assert t.kv_bytes_per_device == pytest.approx(2 * 32 * 4 * 128 * 2 * 148)


@pytest.mark.parametrize("arch", [H100, SN40L], ids=["gpu", "rdu"])
def test_per_request_and_per_step_costs_over_two_output_lengths(arch):
    """Hand-computed: R once per request, S per step (prefill + each decode step), P per
    sequence per step. Over 20 and 200 output tokens at batch 2 the latency moves by
    exactly R + T (S + 2P) from the stack-free run."""
    base = with_host(dep(arch))
    R, S, P = 7e-3, 3e-4, 5e-5
    costed = with_host(dep(arch), per_request_s=R, per_step_s=S, per_sequence_step_s=P)
    for out in (20, 200):
        a, b = run(base, out, batch=2), run(costed, out, batch=2)
        assert b.latency_s - a.latency_s == pytest.approx(R + out * (S + 2 * P), rel=1e-9)
        assert b.ttft_s - a.ttft_s == pytest.approx(R + S + 2 * P, rel=1e-9)
        assert b.request_s["host"] == R
        assert b.step_s["host"] - a.step_s["host"] == pytest.approx(S + 2 * P, rel=1e-9)


def test_a_cold_request_pays_the_model_load_once():
    """Hand-computed: the stack's per-model-load work plus the program load of the model's
    prefill and decode steps -- one argument descriptor per off-chip stream of every kernel
    launch, written over the socket's PCIe link (one latency and the bytes, per program)."""
    from rdusim.engine.rdu.model_step import model_plan

    d = with_host(dep(SN40L), per_request_s=1e-3, per_model_load_s=0.02, per_step_s=1e-4)
    warm, cold = simulate_inference(d, 128, 20, 1, CACHE), simulate_inference(d, 128, 20, 1, CACHE, cold=True)
    pcie, per_stream = SN40L.links.pcie, SN40L.launch.argument_bytes_per_stream
    programs = 0.0
    for phase in (Phase.PREFILL, Phase.DECODE):
        plan, _ = model_plan(d, phase, 1, 128)
        streams = sum(k.streams for k in plan.kernels)
        assert streams > len(plan.kernels)                  # every kernel reads weights and writes outputs
        programs += pcie.latency_s + streams * per_stream / pcie.bandwidth_bytes_per_s
    assert 2 * pcie.latency_s < programs < 1e-4              # microseconds: the programs stay resident
    assert cold.latency_s - warm.latency_s == pytest.approx(0.02 + programs, rel=1e-9)
    assert cold.ttft_s - warm.ttft_s == pytest.approx(0.02 + programs, rel=1e-9)
    assert cold.request_s["host"] == pytest.approx(0.021 + programs) and warm.request_s["host"] == pytest.approx(1e-3)
    assert dict(cold.request_host_terms_s) == pytest.approx({"request_setup": 1e-3, "program_load": programs,
                                                             "model_load": 0.02})
    # a GPU keeps its kernels resident: a cold request pays only the stack's model load
    g = with_host(dep(H100), per_model_load_s=0.02)
    assert run(g).latency_s + 0.02 == pytest.approx(simulate_inference(g, 128, 20, 1, CACHE, cold=True).latency_s)


def test_trends_latency_falls_with_tp_rises_with_batch():
    tp1, tp8 = run(dep(tp=1)), run(dep(tp=8))
    bs8 = run(dep(tp=8), batch=8)
    assert tp8.latency_s < tp1.latency_s
    assert bs8.latency_s > tp8.latency_s
    assert tp1.breakdown_s["memory"] > tp8.breakdown_s["memory"] * 4   # TP1 decode streams weights


def test_a100_slower_than_h100_by_the_same_mechanisms():
    h, a = run(dep(H100)), run(dep(A100))
    assert a.latency_s > h.latency_s
    assert a.breakdown_s["memory"] > h.breakdown_s["memory"]


@pytest.mark.parametrize("arch", [H100, SN40L], ids=["gpu", "rdu"])
def test_longer_output_reads_a_longer_cache(arch):
    short, long = run(dep(arch), 20), run(dep(arch), 200)
    assert long.ttft_s == short.ttft_s
    assert long.tpot_s >= short.tpot_s
    assert long.latency_s == pytest.approx(long.ttft_s + 199 * long.tpot_s)


def test_single_token_is_request_plus_prefill():
    t = run(dep(), 1)
    assert t.tpot_s == 0 and t.latency_s == t.ttft_s


@pytest.mark.parametrize("arch", [H100, SN40L], ids=["gpu", "rdu"])
def test_decode_interpolation_is_exact_at_anchors_and_linear_between(arch):
    d = dataclasses.replace(dep(arch), execution=ExecutionConfig(context_bucket_tokens=128))
    sm = StepModel(d, CACHE)
    times, _, anchors = sm.decode(1, [128, 192, 256])
    assert [int(a) for a in sm.anchors(np.array([128.0, 192.0, 256.0]))] == [128, 256]
    assert times[0] == sm.engine_step(Phase.DECODE, 1, 128).time_s
    assert times[2] == sm.engine_step(Phase.DECODE, 1, 256).time_s
    assert times[1] == pytest.approx((times[0] + times[2]) / 2, rel=1e-12)


def test_step_interface_matches_engine_steps():
    sm = StepModel(dep(), CACHE)
    pre = sm.packed_prefill_s([(256, 0)])             # one prompt at an anchor length: the engine step
    assert pre == pytest.approx(sm.prefill(1, 256).time_s)
    dec = sm.decode_s(2, 256)                         # a decode batch at an anchor: the engine step
    assert dec == pytest.approx(sm.engine_step(Phase.DECODE, 2, 256).time_s)
    times, parts, _ = sm.decode(2, [256, 300])
    assert times[1] == pytest.approx(sm.decode_s(2, 300))   # both views follow the one rule
    assert sum(p[1] for p in parts.values()) == pytest.approx(times[1])
    mixed = sm.mixed_s([(128, 0)], 1, 256)            # one fused step: weights and host work once
    assert mixed < sm.prefill(1, 128).time_s + sm.engine_step(Phase.DECODE, 1, 256).time_s


def test_stacks_change_only_host_time():
    t = {name: run(dep(stack=name)) for name in ("nemo", "tensorrt_llm", "vllm")}
    kernels = {n: v.breakdown_s["memory"] + v.breakdown_s["compute"] for n, v in t.items()}
    assert kernels["nemo"] == pytest.approx(kernels["vllm"]) == pytest.approx(kernels["tensorrt_llm"])
    assert t["tensorrt_llm"].latency_s < t["nemo"].latency_s
    assert t["tensorrt_llm"].breakdown_s["host"] < t["vllm"].breakdown_s["host"]


def test_bad_requests():
    with pytest.raises(ValueError):
        run(dep(tp=16))
    with pytest.raises(ValueError):
        run(dep(launch=LaunchMode.HARDWARE))
    with pytest.raises(ValueError):
        load_stack("nemo") and Deployment.of(H100, CFG, 8, stack=dataclasses.replace(load_stack("nemo"),
                                                                                      launch=LaunchMode.HARDWARE))


def test_execution_buffering_reaches_the_compiler_and_the_pipeline():
    """execution.buffer_depth / tile_bytes size the stage buffers (PMUs) and the pipeline's
    backpressure: a deeper buffer needs more PMUs and changes the simulated step."""
    from rdusim.compiler.placement import Buffering
    from rdusim.engine.rdu.model_step import model_plan

    base = dep(SN40L)
    deep = dataclasses.replace(base, execution=ExecutionConfig(buffer_depth=4))
    small = dataclasses.replace(base, execution=ExecutionConfig(tile_bytes=4096))
    assert deep.execution.buffering == Buffering(131072.0, 4)
    p2, p4 = model_plan(base, Phase.PREFILL, 1, 512)[0], model_plan(deep, Phase.PREFILL, 1, 512)[0]
    ps = model_plan(small, Phase.PREFILL, 1, 512)[0]
    assert {k.buffer_depth for k in p2.kernels} == {2} and {k.buffer_depth for k in p4.kernels} == {4}
    assert sum(k.pmus for k in p4.kernels) > sum(k.pmus for k in p2.kernels) >= sum(k.pmus for k in ps.kernels)
    one = dataclasses.replace(base, execution=ExecutionConfig(buffer_depth=1))
    assert run(one).tpot_s != run(base).tpot_s
