"""Workload kind ``model``: one model served on each platform (prefill + decode)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from rdusim.config import limits as L
from rdusim.config.limits import upto
from rdusim.config.execution import ExecutionConfig
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
    execution: ExecutionConfig = ExecutionConfig()   # simulation granularity
    seed: int = field(default=0, metadata=upto(L.MAX_SEED, ge=0))
    description: str = ""
