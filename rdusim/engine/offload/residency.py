"""Which experts are in HBM: a residency policy over a fixed number of slots.

Both policies start from the experts most often chosen on a calibration draw (Fiddler's
placement). ``static`` keeps that set: an expert copied in for one step lands in a scratch
buffer and is dropped. ``lru`` keeps every copied expert, evicting the least recently used.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from rdusim.config.offload import Residency

Expert = tuple[int, int]          # (layer, expert)


def most_popular(calibration: np.ndarray, slots: int) -> list[Expert]:
    """The ``slots`` (layer, expert) pairs with the most calibration tokens (ties: lower index)."""
    flat = calibration.ravel()
    order = np.lexsort((np.arange(flat.size), -flat))[:slots]
    experts = calibration.shape[1]
    return [(int(i // experts), int(i % experts)) for i in order]


class ResidentSet:
    def __init__(self, policy: Residency, initial: list[Expert], slots: int) -> None:
        self.policy = policy
        self.slots = slots
        self._lru: OrderedDict[Expert, None] = OrderedDict((e, None) for e in initial)

    def __contains__(self, e: Expert) -> bool:
        return e in self._lru

    def hit(self, e: Expert) -> None:
        self._lru.move_to_end(e)

    def copied(self, e: Expert) -> None:
        """Expert ``e`` was copied into HBM for this step."""
        if self.policy is Residency.LRU and self.slots > 0:
            if len(self._lru) >= self.slots:
                self._lru.popitem(last=False)
            self._lru[e] = None
