"""A model workload's ``scaling:`` section: one platform's machine at several sizes, per
weight format (rdusim.studies.scaling_run).

``machines`` names each size by the arch overrides that make it (``{slice.topology: 4x4}``
on a TPU v5e, ``{node.gpus: 4}`` on a GPU node); the model is tensor parallel over all of
that machine's devices. Per weight format and size: whether the model fits, the largest
batch per context length, the decode step and prefill at the workload's batch, tokens/s per
device, the step's collective share, and a latency-throughput curve over ``batches``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from rdusim.config import limits as L
from rdusim.config.limits import upto
from rdusim.graph.tensor import DType

SCALING_WEIGHTS = (DType.BF16, DType.INT8, DType.INT4)


@dataclass(frozen=True)
class ScalingSpec:
    platform: str                                   # the workload's platform whose machine is resized
    machines: Mapping[str, Mapping[str, Any]]       # size name -> arch overrides (dotted key -> value)
    weight_formats: tuple[DType, ...] = SCALING_WEIGHTS
    group_size: int = field(default=128, metadata={"gt": 0})        # elements per scale of int8/int4 weights
    contexts: tuple[int, ...] = field(default=(2048, 8192, 32768), metadata=upto(L.MAX_TOKENS, gt=None))
    batches: tuple[int, ...] = field(default=(1, 4, 16, 64, 128, 256), metadata=upto(L.MAX_BATCH, gt=None))

    def __post_init__(self) -> None:
        if not self.machines:
            raise ValueError("machines", "at least one machine size", {})
        bad = [d.value for d in self.weight_formats if d not in SCALING_WEIGHTS]
        if bad:
            raise ValueError("weight_formats", f"some of {[d.value for d in SCALING_WEIGHTS]}", bad[0])
        for name in self.machines:
            if "." in name or not name:
                raise ValueError("machines", "size names without '.' (they sit between the dots of metric keys)",
                                 name)
