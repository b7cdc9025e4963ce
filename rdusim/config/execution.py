"""Execution settings: constants of the simulation itself that change results.

They are not hardware (arch files) nor serving software (stacks): how finely the
simulator cuts work. Every workload kind takes an ``execution:`` mapping, so
``--set execution.tiles=128`` and ``rdusim sweep`` can change them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BUFFER_DEPTH = 2            # double-buffered stage buffers (default of execution.buffer_depth)
TILE_BYTES = 128 * 1024     # largest tile a stage buffer holds (default of execution.tile_bytes)


@dataclass(frozen=True)
class Buffering:
    """How an RDU kernel's stage buffers are sized: the largest tile one holds and how many
    tiles deep it is (the workload's ``execution.tile_bytes`` and ``execution.buffer_depth``;
    the compiler's placement, rdusim.compiler.placement, sizes PMUs by it)."""

    tile_bytes: float = TILE_BYTES
    depth: int = BUFFER_DEPTH


@dataclass(frozen=True)
class ExecutionConfig:
    # RDU: tiles each kernel's off-chip streams are cut into (pipeline fill/drain granularity)
    tiles: int = field(default=64, metadata={"gt": 0, "le": 4096})
    # decode steps are simulated at contexts that are multiples of this many tokens and
    # interpolated linearly in between (per-step time is affine in the context apart from
    # small quantisation steps; both engines use this one rule)
    context_bucket_tokens: int = field(default=256, metadata={"gt": 0, "le": 1 << 20})
    # RDU: the largest tile a stage buffer holds (bytes), and how many tiles deep stage
    # buffers are (2: double buffering); both size the PMUs a stage needs, and the depth
    # is the pipeline's backpressure
    tile_bytes: int = field(default=TILE_BYTES, metadata={"gt": 0, "le": 1 << 30})
    buffer_depth: int = field(default=BUFFER_DEPTH, metadata={"ge": 1, "le": 64})
    # roofline mode: every efficiency 1, every latency, launch, floor and host cost 0, and
    # each step timed as the textbook roofline on every family (rdusim.engine.roofline)
    ideal: bool = False

    @property
    def buffering(self) -> Buffering:
        return Buffering(float(self.tile_bytes), self.buffer_depth)
