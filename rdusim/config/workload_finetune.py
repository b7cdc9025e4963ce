"""Workload kind ``finetune``: one fine-tuning job (a model, what trains, datasets) on each
platform: the largest batch that fits, queries per second, hours and steps per job
(rdusim/studies/finetune.py)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Mapping, Optional

from rdusim.config import limits as L
from rdusim.config.execution import ExecutionConfig
from rdusim.config.limits import upto
from rdusim.config.workload import PlatformSpec
from rdusim.finetune.dataset import Dataset
from rdusim.finetune.expert_load import FinetuneRouting
from rdusim.graph.peft import PeftSpec


class MoeMode(enum.Enum):
    """How an MoE model's experts train: ``sparse`` routes each token to the model's top-k,
    ``dense`` to every expert (the same weights, all experts computing every token)."""

    SPARSE = "sparse"
    DENSE = "dense"


@dataclass(frozen=True)
class FinetuneWorkload:
    name: str
    kind: str
    model: str
    platforms: Mapping[str, PlatformSpec]
    datasets: Mapping[str, Dataset]
    training: PeftSpec = PeftSpec()
    moe: tuple[MoeMode, ...] = (MoeMode.SPARSE,)
    routing: Optional[FinetuneRouting] = None    # sparse experts' load (rdusim.finetune.expert_load); None: expected
    max_batch: int = field(default=256, metadata=upto(L.MAX_BATCH))      # the search's upper end
    quadrature_points: int = field(default=4, metadata=upto(64))        # padded lengths timed per job
    execution: ExecutionConfig = ExecutionConfig()
    seed: int = field(default=0, metadata=upto(L.MAX_SEED, ge=0))
    description: str = ""

    def __post_init__(self) -> None:
        if not self.platforms:
            raise ValueError("platforms", "at least one platform", {})
        if not self.datasets:
            raise ValueError("datasets", "at least one dataset", {})
        if len(set(self.moe)) != len(self.moe) or not self.moe:
            raise ValueError("moe", "a non-empty list of distinct modes (sparse, dense)", [m.value for m in self.moe])
        for name in self.datasets:
            if not name or "." in name:
                raise ValueError(f"datasets.{name}", "a dataset name without '.' (it appears in metric keys)", name)
