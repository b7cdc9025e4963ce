"""Execution policies: how a graph is cut into kernels and how kernels are launched."""

from __future__ import annotations

import enum


class FusionPolicy(enum.Enum):
    UNFUSED = "unfused"   # one kernel per operator; intermediates go through HBM
    FUSED = "fused"       # streaming fusion (RDU) / library fusion (GPU)


class LaunchMode(enum.Enum):
    SOFTWARE = "so"       # RDU: host software launches every kernel
    HARDWARE = "ho"       # RDU: AGCU runs the static kernel schedule
    CUDA_EAGER = "eager"  # GPU: one host launch call per kernel
    CUDA_GRAPH = "graph"  # GPU: kernels replayed from a captured CUDA graph
    XLA = "xla"           # TPU: the whole step is one compiled XLA program the host dispatches once
