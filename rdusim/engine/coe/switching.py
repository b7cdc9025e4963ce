"""Expert switching paths: where an expert's shards are copied from, over which resources.

Each family answers the links a copy crosses and each device's path over them
(``Family.copy_links``): on the SN40L each socket copies its shard from its own DDR into
its own HBM (DDR read, the AGCUs, the HBM write; sockets share nothing); on a DGX each
GPU's shard goes host DRAM -> shared host link -> its PCIe link -> its HBM
(rdusim.engine.gpu.hostcopy); on a TPU slice from its host's DRAM over the chip's PCIe
link. On the flow network every copy is bounded by the slowest resource on its path and
shares each resource max-min fairly with other copies.

The HBM links (``hbm_link``) are also where a copy meets the expert execution it
overlaps (rdusim.engine.coe.serving).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Callable

from rdusim.config.arch import ArchSpec
from rdusim.engine.families import family
from rdusim.engine.family import hbm_link as device_hbm_link
from rdusim.engine.fluid import Link, together_s
from rdusim.cache import active_cache
from rdusim.engine.evaluation import Evaluation, current

if TYPE_CHECKING:          # SimPy and the network are imported where copies are simulated
    import simpy

    from rdusim.engine.transfer import FlowNetwork


def hbm_link(arch: ArchSpec) -> Callable[[int], str]:
    """Name of device i's HBM link in the switch network of ``arch`` (every family's ``hbm<i>``)."""
    return device_hbm_link


def hbm_bandwidth_bytes_per_s(arch: ArchSpec) -> float:
    """Achievable HBM bandwidth of one device (the capacity of its HBM link)."""
    return arch.device_hbm.effective_bandwidth_bytes_per_s


def switch_links(arch: ArchSpec, devices: int) -> tuple[list[Link], list[tuple[str, ...]]]:
    """The copy links of ``arch`` (name, bandwidth, latency) and the path each device's shard takes."""
    return family(arch).copy_links(arch, devices)


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
