"""GPU kernel timing: wave quantisation, split-K, padding, floors, collectives."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdusim.config.arch import load_arch
from rdusim.engine.gpu.kernels import (AttentionShape, CollectiveKind, CollectiveShape, GemmShape, KernelClass,
                                       KernelWork, allreduce_time_s, kernel_time)

H100 = load_arch("arch/dgx_h100.yaml")
A100 = load_arch("arch/dgx_a100.yaml")


def gemm(m, n, k, batch=1):
    return KernelWork(KernelClass.GEMM, 2.0 * batch * m * n * k, 2.0 * batch * (m * k + k * n + m * n),
                      gemm=GemmShape(batch, m, n, k))


def test_wave_quantisation_one_tile_more_costs_a_whole_wave():
    # only 128x128 tiles: 12 x 11 = 132 tiles fill the SMs once; 7 x 19 = 133 need two waves
    arch = load_arch("arch/dgx_h100.yaml", [("kernel.tile_small", 128)])
    k = 16384
    full = kernel_time(arch, gemm(128 * 12, 128 * 11, k))
    one_more = kernel_time(arch, gemm(128 * 7, 128 * 19, k))
    assert (full.waves, one_more.waves) == (1, 2)
    assert full.bound == one_more.bound == "compute"
    # 1/132 more work, yet about twice the time
    assert one_more.duration_s / full.duration_s == pytest.approx(2.0, rel=0.01)


def test_smaller_tiles_soften_but_do_not_remove_wave_quantisation():
    k = 16384
    full = kernel_time(H100, gemm(128 * 12, 128 * 11, k))
    one_more = kernel_time(H100, gemm(128 * 7, 128 * 19, k))
    assert 1.2 < one_more.duration_s / full.duration_s < 2.0


def test_small_gemm_does_not_fill_the_sms_without_split_k():
    # 12 tiles of a TP8 QKV projection at 128 tokens: split-K brings the idle SMs in
    t = kernel_time(H100, gemm(128, 1536, 4096))
    assert t.active_sms > 12
    achieved = 2.0 * 128 * 1536 * 4096 / t.duration_s
    assert achieved < 0.5 * H100.device.tensor_flops_per_s   # far from peak: small work, few waves


def test_large_gemm_approaches_the_tensor_efficiency():
    t = kernel_time(H100, gemm(8192, 8192, 8192))
    achieved = 2.0 * 8192 ** 3 / t.duration_s
    eff = H100.kernel.tensor_efficiency
    assert 0.9 * eff < achieved / H100.device.tensor_flops_per_s <= eff + 1e-9


def test_decode_gemv_is_memory_bound_on_both_gpus():
    for arch in (H100, A100):
        t = kernel_time(arch, gemm(1, 11008, 4096))
        assert t.bound == "memory"
        assert t.duration_s == pytest.approx(t.hbm_bytes / arch.device.hbm.effective_bandwidth_bytes_per_s)


def test_tiny_kernels_take_the_floor():
    t = kernel_time(H100, KernelWork(KernelClass.VECTOR, 1e3, 8e3, work_items=1))
    assert t.duration_s == H100.kernel.min_kernel_s
    assert t.bound == "floor" and t.floor_s > 0


def test_few_ctas_cannot_pull_full_hbm_bandwidth():
    big = 64e6
    one = kernel_time(H100, KernelWork(KernelClass.VECTOR, 0.0, big, work_items=1))
    many = kernel_time(H100, KernelWork(KernelClass.VECTOR, 0.0, big, work_items=10_000))
    assert one.duration_s > 10 * many.duration_s
    assert many.duration_s == pytest.approx(big / H100.device.hbm.effective_bandwidth_bytes_per_s)


def test_flash_decoding_splits_long_contexts_over_idle_sms():
    short = kernel_time(H100, KernelWork(KernelClass.ATTENTION, 1.0, 1.0, attention=AttentionShape(4, 1, 256, 128)))
    long = kernel_time(H100, KernelWork(KernelClass.ATTENTION, 1.0, 1.0, attention=AttentionShape(4, 1, 32768, 128)))
    assert short.active_sms == 4
    assert long.active_sms > 4 * 32


def _ar(ranks, nbytes, arch=H100):
    return KernelWork(KernelClass.COLLECTIVE, 0.0, nbytes,
                      collective=CollectiveShape(CollectiveKind.ALLREDUCE, ranks, nbytes))


def test_allreduce_small_messages_cost_the_measured_latency():
    # brief section 4: 8-GPU small all-reduce (4 KB - 2 MB) about 20-40 us on H100, 25-60 us on A100
    for nbytes in (4e3, 64e3, 2e6):
        assert 20e-6 <= kernel_time(H100, _ar(8, nbytes)).duration_s <= 40e-6 * 1.05
        assert 25e-6 <= kernel_time(A100, _ar(8, nbytes)).duration_s <= 60e-6


def test_allreduce_large_messages_are_bandwidth_bound_by_the_best_algorithm():
    nbytes = 1e9
    # H100's NVSwitch gen 3 reduces in the network: each GPU sends and receives the message once
    bus = H100.links.nvlink.effective_bandwidth_bytes_per_s
    fixed = H100.collectives.switch_reduce_latency_s + 2 * H100.links.nvlink.latency_s   # NVLS's own fixed cost
    assert allreduce_time_s(H100, 8, nbytes) == pytest.approx(fixed + nbytes / bus, rel=1e-9)
    # A100's NVSwitch gen 2 cannot: a ring, 2(n-1)/n of the message through each GPU's links
    bus = A100.links.nvlink.effective_bandwidth_bytes_per_s
    fixed = A100.collectives.base_latency_s + 14 * A100.links.nvlink.latency_s
    assert allreduce_time_s(A100, 8, nbytes) == pytest.approx(fixed + 2 * 7 / 8 * nbytes / bus, rel=1e-9)
    assert allreduce_time_s(H100, 1, nbytes) == 0.0


def test_collective_kernels_record_their_algorithm():
    # NCCL has no one-shot all-reduce: a small message takes the double binary tree (6 steps at 8 GPUs)
    assert kernel_time(H100, _ar(8, 8192)).algorithm.value == "tree"
    assert kernel_time(H100, _ar(8, 8192)).steps == 6
    assert kernel_time(H100, _ar(8, 32 * 2 ** 20)).algorithm.value == "switch_reduce"
    assert kernel_time(A100, _ar(8, 32 * 2 ** 20)).algorithm.value == "ring"
    assert kernel_time(A100, _ar(8, 32 * 2 ** 20)).steps == 14


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 8), st.floats(1.0, 1e9), st.floats(1.0, 1e9))
def test_allreduce_cost_grows_with_message_size(ranks, a, b):
    lo, hi = sorted((a, b))
    assert allreduce_time_s(H100, ranks, lo) <= allreduce_time_s(H100, ranks, hi)
    assert allreduce_time_s(H100, ranks, lo) >= H100.collectives.base_latency_s


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4096), st.integers(1, 16384), st.integers(1, 16384))
def test_gemm_time_is_never_below_the_roofline(m, n, k):
    w = gemm(m, n, k)
    t = kernel_time(H100, w)
    roof = max(w.flops / H100.device.tensor_flops_per_s, w.hbm_bytes / H100.device.hbm.bandwidth_bytes_per_s)
    assert t.duration_s >= roof * (1 - 1e-12)
    assert t.duration_s >= H100.kernel.min_kernel_s
    assert math.isfinite(t.duration_s)


def test_same_signature_is_timed_once():
    from rdusim.cache import RunCache
    cache = RunCache()
    first = kernel_time(H100, gemm(3, 5, 7), cache)
    assert kernel_time(H100, gemm(3, 5, 7), cache) is first
    assert (cache.misses["gpu_kernel"], cache.hits["gpu_kernel"]) == (1, 1)
    kernel_time(H100, gemm(3, 5, 8), cache)
    assert cache.misses["gpu_kernel"] == 2
