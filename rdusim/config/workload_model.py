"""Workload kind ``model``: one model served on each platform (prefill + decode)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

from rdusim.config import limits as L
from rdusim.config.limits import upto
from rdusim.config.execution import ExecutionConfig
from rdusim.config.formats import Formats
from rdusim.config.offload import OffloadSpec
from rdusim.config.scaling import ScalingSpec
from rdusim.config.speculative import SpeculativeSpec
from rdusim.config.workload_cluster import ClusterPlatformSpec
from rdusim.config.workload import PlatformSpec


@dataclass(frozen=True)
class ModelWorkload:
    name: str
    kind: str
    model: str
    platforms: Mapping[str, PlatformSpec]
    prompt_tokens: int = field(default=128, metadata=upto(L.MAX_TOKENS))
    output_tokens: int = field(default=20, metadata=upto(L.MAX_TOKENS))
    batch_size: int = field(default=1, metadata=upto(L.MAX_BATCH))
    formats: Formats = Formats()                     # weight / KV-cache / compute formats of the model
    speculative: Optional[SpeculativeSpec] = None    # also serve it with a draft model (rdusim.config.speculative)
    offload: Optional[OffloadSpec] = None            # a MoE model's experts as individuals (rdusim.config.offload)
    scaling: Optional[ScalingSpec] = None            # one platform resized, per weight format (rdusim.config.scaling)
    clusters: Mapping[str, ClusterPlatformSpec] = field(default_factory=dict)   # pipelined over nodes
    execution: ExecutionConfig = ExecutionConfig()   # simulation granularity
    seed: int = field(default=0, metadata=upto(L.MAX_SEED, ge=0))
    description: str = ""
