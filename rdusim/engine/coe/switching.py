"""Expert switching paths: where an expert's shards are copied from, over which resources.

SN40L: each socket copies its shard from its own DDR into its own HBM: DDR read
(``socket.ddr``, achievable bandwidth), the AGCUs that bridge the tile to the memories
(``socket.agcu``: count x bandwidth), the HBM write (``socket.hbm``). Sockets share
nothing. DGX: each GPU's shard goes host DRAM -> shared host link -> its PCIe link ->
its HBM (rdusim.engine.gpu.hostcopy). On the flow network every copy is bounded by the
slowest resource on its path and shares each resource max-min fairly with other copies.

The HBM links (``hbm_link``) are also where a copy meets the expert execution it
overlaps (rdusim.engine.coe.serving).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Callable

from rdusim.config.arch import ArchSpec
from rdusim.config.arch_common import ArchKind
from rdusim.engine.fluid import Link, together_s
from rdusim.engine.gpu.hostcopy import dgx_host_links, hbm_link as gpu_hbm_link, host_to_gpu_path

if TYPE_CHECKING:          # SimPy and the network are imported where copies are simulated
    import simpy

    from rdusim.engine.transfer import FlowNetwork


def ddr_link(socket: int) -> str:
    return f"ddr{socket}"


def agcu_link(socket: int) -> str:
    return f"agcu{socket}"


def hbm_link(arch: ArchSpec) -> Callable[[int], str]:
    """Name of device i's HBM link in the switch network of ``arch``."""
    return (lambda s: f"hbm{s}") if arch.kind == ArchKind.RDU else gpu_hbm_link


def hbm_bandwidth_bytes_per_s(arch: ArchSpec) -> float:
    """Achievable HBM bandwidth of one socket / GPU (the capacity of its HBM link)."""
    hbm = arch.socket.hbm if arch.kind == ArchKind.RDU else arch.device.hbm
    return hbm.effective_bandwidth_bytes_per_s


def switch_links(arch: ArchSpec, devices: int) -> tuple[list[Link], list[tuple[str, ...]]]:
    """The copy links of ``arch`` (name, bandwidth, latency) and the path each device's shard takes."""
    if arch.kind == ArchKind.RDU:
        sock, hbm = arch.socket, hbm_link(arch)
        links: list[Link] = []
        for s in range(devices):
            links += [(ddr_link(s), sock.ddr.effective_bandwidth_bytes_per_s, sock.ddr.latency_s),
                      (agcu_link(s), sock.agcu.count * sock.agcu.bandwidth_bytes_per_s, 0.0),
                      (hbm(s), sock.hbm.effective_bandwidth_bytes_per_s, 0.0)]
        return links, [(ddr_link(s), agcu_link(s), hbm(s)) for s in range(devices)]
    return dgx_host_links(arch), [host_to_gpu_path(g) for g in range(devices)]


def switch_network(env: "simpy.Environment", arch: ArchSpec, devices: int) -> tuple["FlowNetwork", list[tuple[str, ...]]]:
    """A FlowNetwork with the copy links of ``arch`` and the path each device's shard takes."""
    from rdusim.engine.transfer import FlowNetwork

    net = FlowNetwork(env)
    links, paths = switch_links(arch, devices)
    for link in links:
        net.add_link(*link)
    return net, paths


def copy_expert(env: "simpy.Environment", net: "FlowNetwork", paths: list[tuple[str, ...]],
                expert_bytes: float, label: str) -> "simpy.Event":
    """Every device loads its 1/len(paths) shard at once; fires when the last shard lands
    (the shards' TransferRecords are in ``net.records``)."""
    n = len(paths)
    return net.transfer_all(paths, expert_bytes / n, [label + shard for shard in _shards(n)])


def shard_copier(net: "FlowNetwork", paths: list[tuple[str, ...]], expert_bytes: float) -> Callable[[str], "simpy.Event"]:
    """:func:`copy_expert` of ``expert_bytes`` over ``paths`` as a function of the label (the
    paths checked once, however many experts a serving run copies)."""

    n = len(paths)
    return partial(net.group_transfer(paths, _shards(n)), expert_bytes / n)


def _shards(n: int) -> tuple[str, ...]:
    """The label suffixes of the shards of ``n`` devices."""
    return _SHARDS[:n] if n <= len(_SHARDS) else tuple(f".d{i}" for i in range(n))


_SHARDS = tuple(f".d{i}" for i in range(64))    # the label suffix of device i's shard


def lone_switch_s(arch: ArchSpec, devices: int, expert_bytes: float) -> float:
    """Time to switch one expert in with nothing else moving (worked out once per run for
    the same machine, devices and bytes: the run's cache). Every shard starts at once on
    paths of one latency, so the network's answer needs no events
    (:func:`rdusim.engine.fluid.together_s`; :func:`simulate_lone_switch`, the reference,
    inside ``rdusim.engine.evaluation.reference()``)."""
    from rdusim.cache import active_cache
    from rdusim.engine.evaluation import Evaluation, current

    def compute() -> float:
        links, paths = switch_links(arch, devices)
        exact = current() == Evaluation.CLOSED_FORM and paths
        t = together_s(links, paths, expert_bytes / len(paths)) if exact else None
        return t if t is not None else simulate_lone_switch(arch, devices, expert_bytes)
    return active_cache().get_or_compute("lone_switch", (arch, devices, float(expert_bytes)), compute)


def simulate_lone_switch(arch: ArchSpec, devices: int, expert_bytes: float) -> float:
    """:func:`lone_switch_s` on the flow network, with SimPy's events."""
    import simpy

    env = simpy.Environment()
    net, paths = switch_network(env, arch, devices)
    copy_expert(env, net, paths, expert_bytes, "lone")
    env.run()
    return env.now
