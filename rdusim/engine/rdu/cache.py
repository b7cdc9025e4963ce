"""Identical kernels are simulated once per run: KernelRuns in the run's cache.

The key is the content of (the socket as the kernel sees it, tiles, the kernel without its
names): a decoder layer repeated 32-80 times is simulated once, and a kernel that touches
only HBM is not simulated again when only the DDR (or the P2P link...) changes
(:meth:`SocketHw.for_kernel`). Results are deterministic, so caching never changes them;
the cache (a :class:`rdusim.cache.RunCache` the caller owns) only saves time.
"""

from __future__ import annotations

from typing import Sequence

from rdusim.cache import RunCache
from rdusim.compiler.plan import Kernel
from rdusim.engine.rdu.hardware import SocketHw
from rdusim.engine.rdu.pipeline import KernelRun, simulate_kernel

NAMESPACE = "kernel"


def kernel_run(cache: RunCache, kernel: Kernel, hw: SocketHw, tiles: int) -> tuple[KernelRun, bool]:
    """The kernel's run, and whether it came from the cache."""
    view = hw.for_kernel(kernel)
    return cache.get_or_compute_hit(NAMESPACE, (view, tiles, kernel),
                                    lambda: simulate_kernel(kernel, view, tiles))


def kernel_runs(cache: RunCache, kernels: Sequence[Kernel], hw: SocketHw,
                tiles: int) -> tuple[list[KernelRun], list[bool]]:
    """:func:`kernel_run` of each kernel of a plan: its runs, and whether each repeats a
    kernel met earlier in ``kernels`` (the records' ``reused``). Each distinct kernel is
    looked up once: a kernel whose content (its :attr:`~rdusim.compiler.plan.Kernel.signature`,
    every field but its names) was met earlier has the same cache key (the view of ``hw``
    is a function of that content too), so it gets that run, counted as a cache hit, as
    its own lookup would. ``reused`` is a fact of the plan, not of the cache: the same
    whatever the cache held before (another step, another process, ``--cache-dir``)."""
    runs: list[KernelRun] = []
    repeated: list[bool] = []
    seen: dict = {}                  # signature -> its run
    for k in kernels:
        sig = k.signature
        run = seen.get(sig)
        repeated.append(run is not None)
        if run is None:
            run = seen[sig] = kernel_run(cache, k, hw, tiles)[0]
        runs.append(run)
    repeats = len(kernels) - len(seen)
    if repeats:
        cache.count_hits(NAMESPACE, repeats)
    return runs, repeated
