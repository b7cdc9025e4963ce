"""Workload kind ``model``: one model served on each platform (prefill + decode)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from rdusim.config.execution import ExecutionConfig
from rdusim.config.strict import positive
from rdusim.config.workload import PlatformSpec


@dataclass(frozen=True)
class ModelWorkload:
    name: str
    kind: str
    model: str
    platforms: Mapping[str, PlatformSpec]
    prompt_tokens: int = field(default=128, metadata=positive())
    output_tokens: int = field(default=20, metadata=positive())
    batch_size: int = field(default=1, metadata=positive())
    execution: ExecutionConfig = ExecutionConfig()   # simulation granularity
    seed: int = 0
    description: str = ""
