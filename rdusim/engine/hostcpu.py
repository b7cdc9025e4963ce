"""The host CPU as a device: an op run on it where its weights are, in host DRAM.

A roofline with the CPU's declared efficiencies (rdusim.config.hostcpu): the op's FLOPs
over the CPU's achievable rate for the weights' format (converted to FP32 on the fly where
the CPU has no native rate for it), its weight bytes over the achievable host DRAM
bandwidth, plus a fixed cost per call; its activations cross the device's host link there
and back. Families whose experts can live in host DRAM answer ``Family.in_place`` with it.
"""

from __future__ import annotations

from typing import Optional

from rdusim.config.arch_common import Link
from rdusim.config.hostcpu import HostCpu
from rdusim.config.arch_common import MemoryTier
from rdusim.engine.family import InPlace, InPlaceWhere
from rdusim.graph.tensor import DType


def host_cpu_in_place(cpu: Optional[HostCpu], dram: MemoryTier, weight: DType, link: Link) -> Optional[InPlace]:
    """The CPU ``cpu`` computing on weights stored at ``weight`` in ``dram``, its activations over
    ``link`` (the device's PCIe link); None when the machine describes no host CPU."""
    if cpu is None:
        return None
    return InPlace(InPlaceWhere.CPU, cpu.achievable_rate(weight),
                   dram.bandwidth_bytes_per_s * cpu.dram_efficiency, cpu.call_s, link)
