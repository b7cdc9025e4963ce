"""A cluster platform of a ``model`` workload: a model pipelined over the nodes of a cluster."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from rdusim.config.policy import FusionPolicy, LaunchMode
from rdusim.config.strict import positive


@dataclass(frozen=True)
class ClusterPlatformSpec:
    cluster: str                                          # clusters/*.yaml
    tp: int = field(default=8, metadata=positive())       # tensor parallel inside each node
    stages: int = field(default=2, metadata=positive())   # pipeline stages, one node each
    microbatches: int = field(default=1, metadata=positive())
    fusion: FusionPolicy = FusionPolicy.FUSED
    launch: Optional[LaunchMode] = None                   # None: the stack's launch mode
    stack: Optional[str] = None                           # None: the node kind's default stack
