"""Execution settings: constants of the simulation itself that change results.

They are not hardware (arch files) nor serving software (stacks): how finely the
simulator cuts work. Every workload kind takes an ``execution:`` mapping, so
``--set execution.tiles=128`` and ``rdusim sweep`` can change them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
    tile_bytes: int = field(default=128 * 1024, metadata={"gt": 0, "le": 1 << 30})
    buffer_depth: int = field(default=2, metadata={"ge": 1, "le": 64})
    # roofline mode: every efficiency 1, every latency, launch, floor and host cost 0, and
    # each step timed as the textbook roofline on every family (rdusim.engine.roofline)
    ideal: bool = False

    @property
    def buffering(self):
        from rdusim.compiler.placement import Buffering

        return Buffering(float(self.tile_bytes), self.buffer_depth)
