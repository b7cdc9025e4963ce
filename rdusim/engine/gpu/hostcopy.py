"""Host -> GPU copies on a DGX node, on the shared FlowNetwork.

Each GPU has its own PCIe link; every copy from host memory also crosses one
shared ``host_aggregate`` link (CPU root complexes, host DRAM), so GPUs loading
at once contend. Link bandwidths are the effective ones (datasheet x efficiency).
"""

from __future__ import annotations

from typing import Sequence

import simpy

from rdusim.config.arch_gpu import GpuArch
from rdusim.engine.transfer import FlowNetwork

HOST_LINK = "host_aggregate"


def pcie_link(gpu: int) -> str:
    return f"pcie{gpu}"


def host_to_gpu_path(gpu: int) -> tuple[str, str]:
    return (HOST_LINK, pcie_link(gpu))


def add_dgx_host_links(net: FlowNetwork, arch: GpuArch) -> None:
    """Add the node's host_aggregate link and one pcie<i> link per GPU to ``net``."""
    agg, pcie = arch.links.host_aggregate, arch.links.pcie
    net.add_link(HOST_LINK, agg.effective_bandwidth_bytes_per_s, agg.latency_s)
    for g in range(arch.node.gpus):
        net.add_link(pcie_link(g), pcie.effective_bandwidth_bytes_per_s, pcie.latency_s)


def dgx_host_network(env: simpy.Environment, arch: GpuArch) -> FlowNetwork:
    net = FlowNetwork(env)
    add_dgx_host_links(net, arch)
    return net


def host_copy_times(arch: GpuArch, bytes_per_gpu: Sequence[float]) -> tuple[float, ...]:
    """Copies to GPUs 0..n-1 started together; the time each one ends (seconds)."""
    if len(bytes_per_gpu) > arch.node.gpus:
        raise ValueError(f"{len(bytes_per_gpu)} copies but {arch.name} has {arch.node.gpus} GPUs")
    env = simpy.Environment()
    net = dgx_host_network(env, arch)
    events = [net.transfer(host_to_gpu_path(g), n, label=f"gpu{g}") for g, n in enumerate(bytes_per_gpu)]
    env.run()
    return tuple(ev.value.end_s for ev in events)
