"""Uncertainty of the CoE study's sampled metrics: means over independent replications.

Each replication routes its own prompts (a numpy Generator seeded with
``[run seed, replication, batch size, experts]``, so replications are independent and
the same replication gives every platform and token count the same prompts: common random
numbers). A metric is the mean of its per-replication values ``x_1..x_R``; its 95%
confidence interval is the Student-t interval

    mean -/+ t(0.975, R - 1) * s / sqrt(R),     s = sample standard deviation of x_r

which shrinks as 1/sqrt(R); ``t`` is the exact Student-t quantile (:mod:`rdusim.student_t`). A speedup (a ratio of two platforms' means) is handled the same
way over its per-replication ratios ``latency_other_r / latency_ref_r``, never as a ratio of
two intervals. A row carries the mean as its value and the interval as its ``ci``
(:mod:`rdusim.rows`), written as ``<key>``, ``<key>.ci95_low`` and ``<key>.ci95_high``;
with one replication the interval is the point itself (no spread known).
"""

from __future__ import annotations

import math
from typing import Sequence

from rdusim.rows.base import interval
from rdusim.student_t import mean_ci


def mean_and_ci(values: Sequence[float]) -> tuple:
    """(mean, its 95% interval as (low, high)) over several replications, for a row's value
    and ``ci``; one replication: (it, None), no interval written."""
    if len(values) > 1:
        mean, low, high = mean_ci(values)
        return mean, (low, high)
    return values[0], None


def half_width(metrics, key: str) -> float:
    """Relative half-width of ``key``'s interval (0 when it has none)."""
    low, high = interval(metrics, key)
    if low is None or high is None or not metrics.get(key):
        return 0.0
    return (high - low) / 2 / abs(metrics[key])
