"""Host -> GPU copies on a DGX node, on the shared FlowNetwork.

A copy from host memory into one GPU's HBM crosses, in order: the host DRAM read
(``node.host_dram``, shared by every copy), the node's shared host link
(``links.host_aggregate``: CPU root complexes / PCIe switches, shared), that GPU's own
PCIe link (``links.pcie``) and that GPU's HBM write port (``device.hbm``). Every flow
gets its max-min fair share of each link, so a copy is bounded by the slowest resource
on its path, and GPUs loading at once contend on the shared ones. Link bandwidths are
the effective ones (datasheet x efficiency).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from rdusim.config.arch_gpu import GpuArch
from rdusim.engine.family import hbm_link as device_hbm_link

if TYPE_CHECKING:          # the network and SimPy are imported where a copy is simulated
    import simpy

    from rdusim.engine.transfer import FlowNetwork

HOST_DRAM = "host_dram"
HOST_LINK = "host_aggregate"


def pcie_link(gpu: int) -> str:
    return f"pcie{gpu}"


hbm_link = device_hbm_link          # the HBM of one GPU: copies write into it, kernels read from it


def host_to_gpu_path(gpu: int) -> tuple[str, ...]:
    return (HOST_DRAM, HOST_LINK, pcie_link(gpu), hbm_link(gpu))


def dgx_host_links(arch: GpuArch) -> list[tuple[str, float, float]]:
    """host_dram, host_aggregate and, per GPU, pcie<i> and hbm<i>: (name, bandwidth, latency)."""
    dram, agg, pcie, hbm = arch.node.host_dram, arch.links.host_aggregate, arch.links.pcie, arch.device.hbm
    links = [(HOST_DRAM, dram.effective_bandwidth_bytes_per_s, dram.latency_s),
             (HOST_LINK, agg.effective_bandwidth_bytes_per_s, agg.latency_s)]
    for g in range(arch.node.gpus):
        links += [(pcie_link(g), pcie.effective_bandwidth_bytes_per_s, pcie.latency_s),
                  (hbm_link(g), hbm.effective_bandwidth_bytes_per_s, 0.0)]
    return links


def dgx_host_network(env: "simpy.Environment", arch: GpuArch) -> "FlowNetwork":
    from rdusim.engine.transfer import FlowNetwork

    net = FlowNetwork(env)
    for link in dgx_host_links(arch):
        net.add_link(*link)
    return net


def host_copy_times(arch: GpuArch, bytes_per_gpu: Sequence[float]) -> tuple[float, ...]:
    """Copies to GPUs 0..n-1 started together; the time each one ends (seconds)."""
    if len(bytes_per_gpu) > arch.node.gpus:
        raise ValueError(f"{len(bytes_per_gpu)} copies but {arch.name} has {arch.node.gpus} GPUs")
    import simpy

    env = simpy.Environment()
    net = dgx_host_network(env, arch)
    events = [net.transfer(host_to_gpu_path(g), n, label=f"gpu{g}") for g, n in enumerate(bytes_per_gpu)]
    env.run()
    return tuple(ev.value.end_s for ev in events)
