"""One served CoE batch, as the serving models record it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BatchRecord:
    batch: int
    prompts: int
    distinct_experts: int
    hits: int
    misses: int
    router_s: float
    switch_s: float        # time the batch waited for expert copies (exposed switching)
    expert_s: float
    latency_s: float
    hbm_contention_s: float    # expert time lost to prefetch copies writing into HBM (in expert_s)
    bytes_copied: float
    start_s: float
