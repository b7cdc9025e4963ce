"""Serving a request on a DGX: prefill + decode, trends with TP and batch, caching, calibration."""

import pytest

from rdusim.config.arch import load_arch
from rdusim.config.model import load_model
from rdusim.config.policy import FusionPolicy, LaunchMode
from rdusim.config.yamlio import load_yaml
from rdusim.engine.inference import BREAKDOWN_KEYS, InferenceRequest, simulate_inference

H100 = load_arch("arch/dgx_h100.yaml")
A100 = load_arch("arch/dgx_a100.yaml")
CFG = load_model("llama2-7b")


def req(batch=1, tp=8, out=20, launch=LaunchMode.CUDA_GRAPH, prompt=128):
    return InferenceRequest(CFG, prompt, out, batch, tp, FusionPolicy.FUSED, launch)


def test_latency_is_ttft_plus_decode_steps_and_breakdown_sums():
    t = simulate_inference(H100, req())
    assert t.latency_s == pytest.approx(t.ttft_s + 19 * t.tpot_s)
    assert set(t.breakdown_s) == set(BREAKDOWN_KEYS)
    assert sum(t.breakdown_s.values()) == pytest.approx(t.latency_s, rel=1e-12)
    assert all(v >= 0 for v in t.breakdown_s.values())
    assert t.weight_bytes_per_device == pytest.approx(6.74e9 * 2 / 8, rel=0.02)
    assert t.kv_bytes_per_device == pytest.approx(2 * 32 * 4 * 128 * 2 * 148)


def test_cached_by_inputs():
    a = simulate_inference(H100, req(batch=2))
    assert simulate_inference(H100, req(batch=2)) is a


def test_trends_latency_falls_with_tp_rises_with_batch():
    tp1, tp8 = simulate_inference(H100, req(tp=1)), simulate_inference(H100, req(tp=8))
    bs8 = simulate_inference(H100, req(batch=8, tp=8))
    assert tp8.latency_s < tp1.latency_s
    assert bs8.latency_s > tp8.latency_s
    # TP1 decode is weight streaming; TP8 decode is mostly overheads
    assert tp1.breakdown_s["memory"] > tp8.breakdown_s["memory"] * 4


def test_a100_slower_than_h100_by_the_same_mechanisms():
    h, a = simulate_inference(H100, req()), simulate_inference(A100, req())
    assert a.latency_s > h.latency_s
    assert a.breakdown_s["memory"] > h.breakdown_s["memory"]


def test_longer_output_grows_decode_time_linearly_with_context():
    short, long = simulate_inference(H100, req(out=20)), simulate_inference(H100, req(out=200))
    assert long.ttft_s == short.ttft_s
    assert long.tpot_s >= short.tpot_s          # attention reads a longer cache
    assert long.latency_s == pytest.approx(long.ttft_s + 199 * long.tpot_s)


def test_single_token_is_prefill_only():
    t = simulate_inference(H100, req(out=1))
    assert t.tpot_s == 0 and t.latency_s == t.ttft_s


def test_bad_requests():
    with pytest.raises(ValueError):
        simulate_inference(H100, req(tp=16))
    with pytest.raises(ValueError):
        simulate_inference(H100, req(launch=LaunchMode.HARDWARE))


@pytest.mark.slow
def test_all_16_nemo_points_within_tolerance():
    refs = load_yaml("references/nemo_h100.yaml")["references"]
    assert len(refs) == 16
    for r in refs:
        s = r["set"]
        t = simulate_inference(H100, req(batch=s["batch_size"], tp=s["platforms.dgx_h100.tp"]))
        assert abs(t.latency_s / r["expected"] - 1) <= r["tolerance"], r["id"]
