"""Expert switching bounded by every resource on its path, and prefetch that shares HBM."""

import numpy as np
import pytest

from rdusim.config.arch import load_arch
from rdusim.config.workload_coe import CachePolicy
from rdusim.engine.coe.serving import ServingSetup, serve
from rdusim.engine.coe.switching import hbm_bandwidth_bytes_per_s, lone_switch_s
from rdusim.engine.gpu.hostcopy import host_copy_times

EXPERT = 8e9


@pytest.mark.parametrize("slow, key", [
    ("socket.ddr.bandwidth_bytes_per_s", "ddr"),
    ("socket.agcu.bandwidth_bytes_per_s", "agcu"),
    ("socket.hbm.bandwidth_bytes_per_s", "hbm"),
])
def test_sn40l_copy_is_bounded_by_its_slowest_resource(slow, key):
    # every other resource on the DDR -> AGCU -> HBM path made 1 TB/s or more; the slow one 10 GB/s
    fast = [("socket.ddr.bandwidth_bytes_per_s", 1e13), ("socket.ddr.efficiency", 1.0),
            ("socket.agcu.bandwidth_bytes_per_s", 1e12), ("socket.hbm.bandwidth_bytes_per_s", 1e13),
            ("socket.hbm.efficiency", 1.0)]
    count = 32 if key == "agcu" else 1       # the AGCU link is count x per-AGCU bandwidth
    arch = load_arch("arch/sn40l.yaml", [*fast, (slow, 1e10 / count)])
    # 8 sockets, 1 GB each, at 10 GB/s: 0.1 s (DDR latency is 0 in the shipped file)
    assert lone_switch_s(arch, 8, EXPERT) == pytest.approx(1e9 / 1e10, rel=1e-9)


def test_dgx_copy_is_bounded_by_host_dram_when_it_is_the_slowest():
    # host DRAM read at 40 GB/s shared by 8 GPUs: 5 GB/s each, below the host link (64) and PCIe (64)
    arch = load_arch("arch/dgx_h100.yaml", [("node.host_dram.bandwidth_bytes_per_s", 4e10)])
    lat = arch.links.pcie.latency_s + arch.links.host_aggregate.latency_s
    ends = host_copy_times(arch, [1e9] * 8)
    assert ends == pytest.approx([lat + 1e9 / 5e9] * 8, rel=1e-9)
    # and by the GPU's HBM write when that is (absurdly) slowed to 1 GB/s
    arch = load_arch("arch/dgx_h100.yaml", [("device.hbm.bandwidth_bytes_per_s", 1e9), ("device.hbm.efficiency", 1.0)])
    assert host_copy_times(arch, [1e9]) == pytest.approx((lat + 1.0,), rel=1e-9)


def _setup(arch, prefetch: bool, phi=None) -> ServingSetup:
    return ServingSetup(arch=arch, devices=8, experts=4, slots=2, expert_bytes=EXPERT, policy=CachePolicy.LRU,
                        prefetch=prefetch, router_s=lambda b: 0.0, expert_s=lambda n: 1.0, hottest=(0, 1),
                        expert_hbm_fraction=phi)


@pytest.mark.parametrize("path", ["arch/sn40l.yaml", "arch/dgx_h100.yaml"])
def test_prefetch_overlap_costs_the_hbm_time_of_the_copy(path):
    arch = load_arch(path)
    routes = [np.array([2, 3])]          # both miss (experts 0 and 1 are warm)
    copy_s = lone_switch_s(arch, 8, EXPERT)
    shard_hbm_s = EXPERT / 8 / hbm_bandwidth_bytes_per_s(arch)
    # without prefetch the copies run alone: no contention, two exposed switches
    (plain,) = serve(_setup(arch, False), routes)
    assert plain.hbm_contention_s == 0.0
    assert plain.switch_s == pytest.approx(2 * copy_s, rel=1e-9)
    assert plain.expert_s == pytest.approx(2.0, rel=1e-12)
    # with prefetch expert 3's copy (shorter than the 1 s run of expert 2) lands in HBM while
    # expert 2 runs: expert 2 loses the HBM time of one shard, phi x shard / B
    (pre,) = serve(_setup(arch, True), routes)
    assert pre.hbm_contention_s == pytest.approx(shard_hbm_s, rel=1e-9)
    assert pre.hbm_contention_s > 0
    assert pre.expert_s == pytest.approx(2.0 + shard_hbm_s, rel=1e-9)
    assert pre.switch_s == pytest.approx(copy_s, rel=1e-9)
    (half,) = serve(_setup(arch, True, phi=lambda n: 0.5), routes)
    assert half.hbm_contention_s == pytest.approx(shard_hbm_s / 2, rel=1e-9)


def test_expert_hbm_fraction_is_the_memory_share_of_the_run():
    from rdusim.config.model import load_model
    from rdusim.config.workload import load_workload
    from rdusim.studies.coe_timing import ModelTimer

    loaded = load_workload("workloads/coe150.yaml")
    timer = ModelTimer(loaded.deployment("sn40l", load_model("llama2-7b")), loaded.spec.prompt_tokens)
    t = timer.timing(1, 20)
    assert timer.hbm_fraction(1, 20) == pytest.approx(t.breakdown_s["memory"] / t.latency_s)
    assert 0.0 < timer.hbm_fraction(1, 20) < 1.0
