"""Identical kernels are simulated once: a cache of KernelRun keyed by what determines it.

The key is (the socket hardware the kernel uses, tiles, kernel signature): a decoder
layer repeated 32-80 times has one signature and is simulated once, and a kernel that
touches only HBM is not simulated again when only the DDR (or the P2P link...) changes.
Results are deterministic, so caching never changes them; the cache only saves time.
It is bounded (oldest entries dropped).
"""

from __future__ import annotations

from collections import OrderedDict

from rdusim.compiler.plan import Kernel
from rdusim.engine.rdu.hardware import SocketHw
from rdusim.engine.rdu.pipeline import KernelRun, simulate_kernel


class KernelCache:
    def __init__(self, max_entries: int = 8192):
        self._runs: OrderedDict[tuple, KernelRun] = OrderedDict()
        self._max = max_entries
        self.simulated = 0
        self.reused = 0

    def run(self, kernel: Kernel, hw: SocketHw, tiles: int) -> tuple[KernelRun, bool]:
        """The kernel's run, and whether it came from the cache."""
        key = (hw.kernel_key(kernel), tiles, kernel.signature)
        hit = self._runs.get(key)
        if hit is not None:
            self.reused += 1
            return hit, True
        run = simulate_kernel(kernel, hw, tiles)
        self.simulated += 1
        self._runs[key] = run
        if len(self._runs) > self._max:
            self._runs.popitem(last=False)
        return run, False

    def clear(self) -> None:
        self._runs.clear()
        self.simulated = self.reused = 0


KERNELS = KernelCache()
