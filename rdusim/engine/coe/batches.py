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

    def rows(self) -> list[dict]:
        """:meth:`records` as dicts (field -> Python int or float), without a record object per batch."""
        return [dict(zip(COLUMNS, row)) for row in zip(*(getattr(self, c).tolist() for c in COLUMNS))]

    def tail(self, skip: int) -> "BatchTable":
        """The batches after the first ``skip`` (warm-up)."""
        return BatchTable(*(getattr(self, c)[skip:] for c in COLUMNS))

    def mean(self, column: str) -> float:
        values = getattr(self, column)
        return float(values.sum() / len(values)) if len(values) else float("nan")

    def hit_rate(self) -> float:
        accesses = int(self.hits.sum() + self.misses.sum())
        return float(self.hits.sum() / accesses) if accesses else 1.0


@dataclass(frozen=True)
class BatchTables:
    """Several replications' batches in one table (each replication's batches together, in
    order): per-replication means without a table per replication."""

    replications: int
    table: BatchTable

    @classmethod
    def stack(cls, tables: Sequence[BatchTable]) -> "BatchTables":
        """Replications served one by one (the event model), as one table."""
        return cls(len(tables), BatchTable(*(np.concatenate([getattr(t, c) for t in tables]) for c in COLUMNS)))

    def _grid(self, column: str, skip: int) -> np.ndarray:
        values = getattr(self.table, column)
        return values.reshape(self.replications, -1)[:, skip:]

    def means(self, column: str, skip: int = 0) -> list[float]:
        """The mean of ``column`` over each replication's batches after the first ``skip``."""
        grid = self._grid(column, skip)
        return (grid.sum(axis=1) / grid.shape[1]).tolist() if grid.shape[1] else [float("nan")] * len(grid)

    def hit_rates(self, skip: int = 0) -> list[float]:
        hits, misses = self._grid("hits", skip).sum(axis=1), self._grid("misses", skip).sum(axis=1)
        accesses = hits + misses
        return [float(h / a) if a else 1.0 for h, a in zip(hits.tolist(), accesses.tolist())]

    def replication(self, r: int) -> BatchTable:
        n = len(self.table) // self.replications
        return BatchTable(*(getattr(self.table, c)[r * n:(r + 1) * n] for c in COLUMNS))
