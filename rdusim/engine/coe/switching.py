"""Expert switching paths: where an expert's shards are copied from, over which links.

SN40L: each socket copies its shard from its own DDR channels into its HBM (DDR
bandwidth x achievable efficiency per socket; sockets do not share DDR).
DGX: each GPU copies its shard from host DRAM over its PCIe link, and every copy
crosses the node's shared host link (rdusim.engine.gpu.hostcopy).
"""

from __future__ import annotations

import simpy

from rdusim.config.arch import ArchSpec
from rdusim.config.arch_common import ArchKind
from rdusim.engine.gpu.hostcopy import add_dgx_host_links, host_to_gpu_path
from rdusim.engine.transfer import FlowNetwork


def ddr_link(socket: int) -> str:
    return f"ddr{socket}"


def switch_network(env: simpy.Environment, arch: ArchSpec, devices: int) -> tuple[FlowNetwork, list[tuple[str, ...]]]:
    """A FlowNetwork with the copy links of ``arch`` and the path each device's shard takes."""
    net = FlowNetwork(env)
    if arch.kind == ArchKind.RDU:
        ddr = arch.socket.ddr
        for s in range(devices):
            net.add_link(ddr_link(s), ddr.effective_bandwidth_bytes_per_s, ddr.latency_s)
        return net, [(ddr_link(s),) for s in range(devices)]
    add_dgx_host_links(net, arch)
    return net, [host_to_gpu_path(g) for g in range(devices)]


def copy_expert(env: simpy.Environment, net: FlowNetwork, paths: list[tuple[str, ...]],
                expert_bytes: float, label: str) -> simpy.Event:
    """Every device loads its 1/len(paths) shard at once; fires when the last shard lands."""
    shard = expert_bytes / len(paths)
    return simpy.AllOf(env, [net.transfer(p, shard, label=f"{label}.d{i}") for i, p in enumerate(paths)])


def lone_switch_s(arch: ArchSpec, devices: int, expert_bytes: float) -> float:
    """Time to switch one expert in with nothing else moving."""
    env = simpy.Environment()
    net, paths = switch_network(env, arch, devices)
    copy_expert(env, net, paths, expert_bytes, "lone")
    env.run()
    return env.now
