"""Served CoE batches as columns: one array per BatchRecord field.

Thousands of serves of tens of batches each (replications, the expert sweep, the
footprint search, sweep points) would otherwise build a Python object per batch only
to average a few fields; the closed form of serving fills the columns directly and the
event model's records convert. :meth:`BatchTable.records` gives the per-batch records
back (results rows, tests).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rdusim.engine.coe.records import BatchRecord

COLUMNS = tuple(f.name for f in dataclasses.fields(BatchRecord))


@dataclass(frozen=True)
class BatchTable:
    batch: np.ndarray
    prompts: np.ndarray
    distinct_experts: np.ndarray
    hits: np.ndarray
    misses: np.ndarray
    router_s: np.ndarray
    switch_s: np.ndarray
    expert_s: np.ndarray
    latency_s: np.ndarray
    hbm_contention_s: np.ndarray
    bytes_copied: np.ndarray
    start_s: np.ndarray

    def __len__(self) -> int:
        return len(self.batch)

    @classmethod
    def from_records(cls, records: Sequence[BatchRecord]) -> "BatchTable":
        return cls(*(np.array([getattr(r, c) for r in records]) for c in COLUMNS))

    def records(self) -> tuple[BatchRecord, ...]:
        cols = [getattr(self, c).tolist() for c in COLUMNS]
        return tuple(BatchRecord(*row) for row in zip(*cols))

    def tail(self, skip: int) -> "BatchTable":
        """The batches after the first ``skip`` (warm-up)."""
        return BatchTable(*(getattr(self, c)[skip:] for c in COLUMNS))

    def mean(self, column: str) -> float:
        values = getattr(self, column)
        return float(values.sum() / len(values)) if len(values) else float("nan")

    def hit_rate(self) -> float:
        accesses = int(self.hits.sum() + self.misses.sum())
        return float(self.hits.sum() / accesses) if accesses else 1.0
