"""A whole step on a DGX GPU: breakdown, records, launch modes, determinism, what dominates decode."""

import pytest

from rdusim.config.arch import load_arch
from rdusim.config.model import ModelConfig, load_model
from rdusim.config.policy import FusionPolicy, LaunchMode
from rdusim.engine.gpu.step import simulate_step
from rdusim.engine.inference import BREAKDOWN_KEYS
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase

H100 = load_arch("arch/dgx_h100.yaml")
CFG = load_model("llama2-7b")
DECODE = build_model_graph(CFG, Phase.DECODE, 1, 128, tp=8)


def step(graph=DECODE, arch=H100, launch=LaunchMode.CUDA_GRAPH, fusion=FusionPolicy.FUSED, **kw):
    return simulate_step(arch, graph, fusion=fusion, launch=launch, tp=8, **kw)


def test_breakdown_sums_to_step_time_and_records_cover_every_kernel():
    for launch in (LaunchMode.CUDA_GRAPH, LaunchMode.CUDA_EAGER):
        for fusion in FusionPolicy:
            r = step(launch=launch, fusion=fusion)
            assert set(r.breakdown_s) == set(BREAKDOWN_KEYS)
            assert sum(r.breakdown_s.values()) == pytest.approx(r.time_s, rel=1e-9)
            assert len(r.records) == r.kernels + 1      # plus the framework row
            assert 0 < r.util["sm"] <= 1 and 0 < r.util["hbm_bw"] <= 1
            last = r.records[-1]
            assert last["start_s"] + last["duration_s"] == pytest.approx(r.time_s)


TINY = ModelConfig(name="tiny", family="llama", hidden_size=512, intermediate_size=1024, num_attention_heads=8,
                   num_key_value_heads=8, num_hidden_layers=4, vocab_size=1000, max_position_embeddings=512)


def test_eager_launch_is_exposed_on_short_kernels():
    g = build_model_graph(TINY, Phase.DECODE, 1, 64, tp=1)
    kw = dict(fusion=FusionPolicy.FUSED, tp=1)
    graph = simulate_step(H100, g, launch=LaunchMode.CUDA_GRAPH, **kw)
    eager = simulate_step(H100, g, launch=LaunchMode.CUDA_EAGER, **kw)
    assert eager.time_s > 1.5 * graph.time_s
    exposed = sum(r["exposed_launch_s"] for r in eager.records)
    # every kernel is at its floor, so the GPU idles for the rest of each eager launch
    assert exposed == pytest.approx(H100.launch.eager_s + (eager.kernels - 1)
                                    * (H100.launch.eager_s - H100.kernel.min_kernel_s), rel=0.05)


def test_eager_launch_is_hidden_behind_long_kernels():
    g = build_model_graph(CFG, Phase.PREFILL, 8, 512, tp=1, layers=2)
    eager = simulate_step(H100, g, fusion=FusionPolicy.FUSED, launch=LaunchMode.CUDA_EAGER, tp=1)
    exposed = [r["exposed_launch_s"] for r in eager.records if r["kind"] != "host"]
    assert exposed[0] == pytest.approx(H100.launch.eager_s)
    assert sum(exposed[1:]) < 0.01 * eager.time_s


def test_fusion_cuts_kernels_and_time():
    fused, unfused = step(), step(fusion=FusionPolicy.UNFUSED)
    assert fused.kernels < unfused.kernels
    assert fused.time_s < unfused.time_s
    assert fused.flops == pytest.approx(unfused.flops)


def test_bs1_h100_decode_is_dominated_by_launch_allreduce_and_framework():
    from rdusim.config.stack import load_stack

    r = step(host_s=load_stack("nemo").host.step_s(1))
    recs = r.records
    weight_streaming = sum(x["memory_s"] for x in recs if x["kind"] == "gemm")
    overheads = (sum(x["duration_s"] for x in recs if x["kind"] in ("collective", "host"))
                 + sum(x["floor_s"] + x["exposed_launch_s"] for x in recs))
    assert overheads > 2 * weight_streaming
    b = r.breakdown_s
    assert b["launch"] + b["collective"] + b["host"] > 0.6 * r.time_s
    # the weight-streaming floor really is small: the step reads this rank's weights once
    assert weight_streaming == pytest.approx(DECODE.param_bytes / H100.device.hbm.effective_bandwidth_bytes_per_s,
                                             rel=0.1)


def test_deterministic_bit_for_bit():
    a, b = step(trace=True), step(trace=True)
    assert a == b and a.records == b.records and a.trace == b.trace


def test_trace_events_are_valid():
    from rdusim.report.trace import check_trace
    r = step(trace=True)
    assert r.trace and check_trace({"traceEvents": list(r.trace)}) == []


def test_host_time_is_the_stacks_per_step_plus_per_sequence():
    from rdusim.config.stack import HostCosts

    g8 = build_model_graph(CFG, Phase.DECODE, 8, 128, tp=8, layers=1)
    r = step(graph=g8, host_s=HostCosts(per_step_s=1e-3, per_sequence_step_s=1e-4).step_s(8))
    assert r.breakdown_s["host"] == pytest.approx(1e-3 + 8e-4)


def test_tp_beyond_the_node_is_rejected():
    with pytest.raises(ValueError):
        simulate_step(H100, DECODE, fusion=FusionPolicy.FUSED, launch=LaunchMode.CUDA_GRAPH, tp=16)
