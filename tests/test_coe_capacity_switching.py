"""Capacity arithmetic and expert switching on the shipped machines."""

import math

import pytest
import simpy

from rdusim.config.arch import load_arch
from rdusim.engine.coe.capacity import node_capacity
from rdusim.engine.coe.switching import copy_expert, lone_switch_s, switch_network

EXPERT = 13.476831232e9   # Llama-2-7B bf16 bytes, from the graph


def test_capacity_by_hand_sn40l():
    arch = load_arch("arch/sn40l.yaml")
    pinned = EXPERT + 2e9
    cap = node_capacity(arch, 8, EXPERT, pinned)
    # usable = capacity - reserved_bytes: 64 GiB - 4 GiB of HBM, 1.5 TiB - 32 GiB of DDR per socket
    assert cap.hbm_experts == math.floor((8 * 60 * 2**30 - pinned) / EXPERT)
    assert cap.max_experts == math.floor(8 * (1.5 * 2**40 - 32 * 2**30) / EXPERT)   # every expert's home is DDR
    assert cap.fits(cap.max_experts) is None
    assert "exceed DDR" in cap.fits(cap.max_experts + 1)


def test_capacity_by_hand_dgx():
    arch = load_arch("arch/dgx_h100.yaml")
    cap = node_capacity(arch, 8, EXPERT, EXPERT)
    # usable = capacity - reserved_bytes: 80 GiB - 2 GB per GPU, 2 TiB - 128 GB of host DRAM
    assert cap.hbm_experts == math.floor((8 * (80 * 2**30 - 2e9) - EXPERT) / EXPERT) == 48
    assert cap.max_experts == cap.hbm_experts + math.floor((2 * 2**40 - 1.28e11) / EXPERT) == 48 + 153


def test_oom_when_pinned_state_fills_hbm():
    arch = load_arch("arch/dgx_h100.yaml", [("device.hbm.capacity_bytes", 1e9), ("device.hbm.reserved_bytes", 0)])
    cap = node_capacity(arch, 8, EXPERT, EXPERT)
    assert cap.hbm_experts == 0 and "cannot hold the pinned" in cap.fits(1)


@pytest.mark.parametrize("path", ["arch/sn40l.yaml", "arch/dgx_h100.yaml", "arch/dgx_a100.yaml"])
def test_lone_switch_is_bytes_over_effective_bandwidth(path):
    arch = load_arch(path)
    t = lone_switch_s(arch, 8, EXPERT)
    if arch.kind.value == "rdu":
        bw = 8 * arch.socket.ddr.effective_bandwidth_bytes_per_s
        lat = arch.socket.ddr.latency_s
    else:   # the shared host link is the bottleneck in the shipped files
        bw = min(arch.links.host_aggregate.effective_bandwidth_bytes_per_s,
                 8 * arch.links.pcie.effective_bandwidth_bytes_per_s)
        lat = arch.links.host_aggregate.latency_s + arch.links.pcie.latency_s
    assert t == pytest.approx(lat + EXPERT / bw, rel=1e-9)


@pytest.mark.parametrize("path", ["arch/sn40l.yaml", "arch/dgx_h100.yaml"])
def test_switch_is_longer_under_contention(path):
    arch = load_arch(path)
    env = simpy.Environment()
    net, paths = switch_network(env, arch, 8)
    a = copy_expert(env, net, paths, EXPERT, "a")
    b = copy_expert(env, net, paths, EXPERT, "b")
    env.run(simpy.AllOf(env, [a, b]))
    lone = lone_switch_s(arch, 8, EXPERT)
    # two copies share every link fairly: twice the streaming time, the latency paid once
    assert 1.99 * lone < env.now <= 2 * lone
    assert sum(net.link_bytes.values()) >= 2 * EXPERT * (1 - 1e-9)


def test_ddr_bandwidth_what_if_moves_switch_time():
    base = lone_switch_s(load_arch("arch/sn40l.yaml"), 8, EXPERT)
    half = lone_switch_s(load_arch("arch/sn40l.yaml", [("socket.ddr.bandwidth_bytes_per_s", 1e11)]), 8, EXPERT)
    assert half == pytest.approx(2 * base, rel=1e-6)
