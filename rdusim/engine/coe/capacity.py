"""Capacity arithmetic: how many experts fit in HBM beside the pinned state, and in the node.

HBM on every platform holds the router and the KV caches (pinned) and, in what is
left, expert slots. Where the experts live otherwise differs:
- RDU: every expert has its home in accelerator-attached DDR; HBM holds copies (a cache).
- GPU: an expert lives either in HBM or in host DRAM (exclusive homes); an evicted
  expert is written back to host DRAM over the full-duplex PCIe link, off the critical path.
All quantities are per node, for the ``tp`` devices a model is sharded over. Every tier
counts only its usable bytes (capacity less ``reserved_bytes``: the one rule of
:mod:`rdusim.memory`, which the compiler's placement and model runs also use).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rdusim.config.arch import ArchSpec
from rdusim.memory import slots as _slots
from rdusim.memory import usable_bytes


@dataclass(frozen=True)
class Capacity:
    devices: int
    hbm_bytes: float            # usable HBM of the devices the models are sharded over
    backing_bytes: float        # usable DDR (RDU) or host DRAM (GPU)
    expert_bytes: float
    pinned_bytes: float         # router weights + KV caches + activation workspace, always in HBM
    hbm_experts: int            # expert slots in HBM beside the pinned state
    max_experts: int            # experts one node can host at all
    backing_is_cache_home: bool # True: the backing store holds every expert (RDU DDR)

    def fits(self, experts: int) -> Optional[str]:
        """None when ``experts`` can be served; otherwise the reason (an OOM result)."""
        if self.hbm_experts < 1:
            return (f"HBM {self.hbm_bytes / 1e9:.1f} GB usable cannot hold the pinned router, KV caches and activations "
                    f"({self.pinned_bytes / 1e9:.1f} GB) plus one expert ({self.expert_bytes / 1e9:.2f} GB)")
        if experts > self.max_experts:
            store = "DDR" if self.backing_is_cache_home else "HBM + host DRAM"
            return (f"{experts} experts x {self.expert_bytes / 1e9:.2f} GB exceed {store} "
                    f"(at most {self.max_experts} experts)")
        return None


def node_capacity(arch: ArchSpec, tp: int, expert_bytes: float, pinned_bytes: float) -> Capacity:
    """A machine with a device-attached spill tier (the SN40L's DDR) keeps every expert's home
    there and HBM as its cache; one without keeps each expert in HBM or in host DRAM."""
    hbm = tp * usable_bytes(arch.device_hbm)
    spill = arch.spill_tier
    if spill is not None:
        backing = tp * usable_bytes(spill)
        slots = _slots(hbm - pinned_bytes, expert_bytes)
        max_experts = _slots(backing, expert_bytes)
        return Capacity(tp, hbm, backing, expert_bytes, pinned_bytes, slots, max_experts, True)
    backing = usable_bytes(arch.host_dram)
    slots = _slots(hbm - pinned_bytes, expert_bytes)
    max_experts = slots + _slots(backing, expert_bytes)
    return Capacity(tp, hbm, backing, expert_bytes, pinned_bytes, slots, max_experts, False)

