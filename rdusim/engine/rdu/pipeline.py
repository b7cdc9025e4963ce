"""One kernel as a streaming pipeline in SimPy.

Each stage is a process that takes tile t from every input buffer (a bounded FIFO with
``simpy.Store``'s semantics: a full buffer blocks its producer, which is backpressure),
works on it for its tile time, and puts it into every output buffer. Off-chip reads and writes
are processes too: each tile they move holds the memory tier (a shared resource of
the socket) for bytes / achievable bandwidth and is further limited by its AGCUs'
rate. Resident operands are loaded before a stage's first tile. Collective stages hold
the P2P port; edges between the two dies hold the D2D link. The pipeline fills and
drains; the kernel ends when its last process does.

Granularity: every stream of a kernel is cut into the same number of simulated tiles
(the workload's ``tiles``, 64 by default), so a tile is 1/tiles of the kernel's work and
filling and draining the pipeline costs about the sum of its stages' tile times, roughly
depth / tiles of the kernel. The chip's tiles are smaller (the compiler sizes stage
buffers for at most ``TILE_BYTES``), so coarse tiles overstate fill and drain for deep,
big kernels: Llama-2-70B's fused 4K-prefill layer on 260 PCUs runs 12% above its
busiest stage at 64 tiles, 5% at 256 and 4% at 1024. Fill and drain shrink with more
tiles at a proportional cost in simulation time; ``tiles`` is the fidelity knob (the
shipped studies, and the values fitted to them, use 64).

The processes are written once (:mod:`rdusim.engine.rdu.pipeline_process`) and two loops
drive them to the same :class:`KernelRun`: SimPy (:mod:`rdusim.engine.rdu.pipeline_events`,
the reference, selected by ``rdusim.engine.evaluation.reference()`` and used whenever a
trace ``log`` is asked for) and, by default, :mod:`rdusim.engine.rdu.pipeline_fast`, a
minimal event loop that keeps SimPy's event order (time, then the order events were
scheduled in), so every shared FCFS channel serves requests in the same order and every
float is computed by the same operations: the results are bit-identical
(tests/test_pipeline_fast.py checks random kernels and machines).
"""

from __future__ import annotations

from rdusim.compiler.plan import Kernel
from rdusim.engine.evaluation import Evaluation, current
from rdusim.engine.rdu.hardware import SocketHw
from rdusim.engine.rdu.kernel_run import KernelRun
from rdusim.engine.rdu.pipeline_fast import simulate_kernel_fast

__all__ = ["KernelRun", "simulate_kernel", "simulate_kernel_events", "simulate_kernel_fast"]


def simulate_kernel_events(kernel: Kernel, hw: SocketHw, tiles: int, log: list | None = None) -> KernelRun:
    """The SimPy reference model (:mod:`rdusim.engine.rdu.pipeline_events`, imported only
    when it is used: the default evaluation does not need SimPy)."""
    from rdusim.engine.rdu.pipeline_events import simulate_kernel_events as events

    return events(kernel, hw, tiles, log)


def simulate_kernel(kernel: Kernel, hw: SocketHw, tiles: int, log: list | None = None) -> KernelRun:
    """Simulate one execution of ``kernel`` on one socket, its streams cut into ``tiles``.

    ``log``, when given, receives ``(event, time)`` pairs: each stage's tile starts,
    ``<stage>:blocked`` / ``:unblocked`` around puts into full buffers, resident loads
    (the SimPy model records them). Without a log, the fast evaluation unless
    ``evaluation.reference()`` selects the SimPy model.
    """
    if log is not None or current() == Evaluation.EVENTS:
        return simulate_kernel_events(kernel, hw, tiles, log)
    return simulate_kernel_fast(kernel, hw, tiles)
