"""Fine-tuning rows: ``finetune.<platform>.<dataset>.<moe>.<metric>`` (moe: sparse | dense).

``metric`` may be dotted (``memory.activations_bytes``, ``split.backward_s``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

from rdusim.rows.base import Interval, Value, check_ci, leaf, name, read_family

PREFIX = "finetune."
MOE_MODES = ("sparse", "dense")


@dataclass(frozen=True)
class FinetuneRow:
    platform: str
    dataset: str
    moe: str
    metric: str
    value: Value
    ci: Interval = None

    def __post_init__(self):
        name(self.platform, "platform")
        name(self.dataset, "dataset")
        if self.moe not in MOE_MODES:
            raise ValueError(f"moe must be one of {MOE_MODES}, got {self.moe!r}")
        leaf(self.metric)
        check_ci(self.ci)

    def key(self) -> str:
        return f"finetune.{self.platform}.{self.dataset}.{self.moe}.{self.metric}"


def parse(key: str, value: Value, ci: Interval = None) -> Optional[FinetuneRow]:
    parts = key.split(".")
    if len(parts) < 5 or parts[0] != "finetune" or parts[3] not in MOE_MODES or "" in parts:
        return None
    try:
        return FinetuneRow(parts[1], parts[2], parts[3], ".".join(parts[4:]), value, ci)
    except ValueError:
        return None


def from_metrics(metrics: Mapping[str, Value]) -> list[FinetuneRow]:
    return read_family(metrics, PREFIX, parse)
