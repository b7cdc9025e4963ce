"""A fine-tuning dataset: N queries whose token lengths follow a log-normal distribution
(median, spread) cut at a maximum, batched B at a time and padded to the batch's longest.

A batch's padded length is the maximum of B independent lengths; its distribution is
exact (F_max(x) = F(x)^B for the truncated log-normal), so the job's expected step time
is a quadrature over that distribution, not a sample: no confidence interval is needed
and the answer is the same on every run. The quadrature takes ``points`` equal-probability
slices of the padded length's distribution and times one step at each slice's median
length (rounded up to a whole token): attention grows faster than linearly with the
length, so the mean of step times, not the step time of the mean length, is what a job
pays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Callable

_STD = NormalDist()


MAX_QUERIES = 10 ** 12
MAX_EPOCHS = 10_000.0
MAX_SIGMA = 5.0
MAX_DATASET_TOKENS = 1_048_576       # rdusim.config.limits.MAX_TOKENS


@dataclass(frozen=True)
class Dataset:
    queries: int = field(metadata={"gt": 0, "le": MAX_QUERIES})
    median_tokens: float = field(metadata={"ge": 1, "le": MAX_DATASET_TOKENS})
    sigma: float = field(metadata={"ge": 0, "le": MAX_SIGMA})   # log-normal shape (sd of ln length)
    max_tokens: int = field(metadata={"ge": 1, "le": MAX_DATASET_TOKENS})
    epochs: float = field(default=1.0, metadata={"gt": 0, "le": MAX_EPOCHS})

    def __post_init__(self) -> None:
        for key, ok, want in (("queries", 1 <= self.queries <= MAX_QUERIES, f"in 1..{MAX_QUERIES}"),
                              ("median_tokens", 1 <= self.median_tokens <= self.max_tokens,
                               "between 1 and max_tokens"),
                              ("sigma", 0 <= self.sigma <= MAX_SIGMA, f"between 0 and {MAX_SIGMA:g}"),
                              ("max_tokens", 1 <= self.max_tokens <= MAX_DATASET_TOKENS,
                               f"in 1..{MAX_DATASET_TOKENS}"),
                              ("epochs", 0 < self.epochs <= MAX_EPOCHS, f"in (0, {MAX_EPOCHS:g}]")):
            if not ok:
                raise ValueError(key, want, getattr(self, key))

    def cdf(self, x: float) -> float:
        """P(length <= x), the log-normal cut (renormalised) at max_tokens."""
        if x >= self.max_tokens:
            return 1.0
        if x <= 0:
            return 0.0
        if self.sigma == 0:
            return 1.0 if x >= self.median_tokens else 0.0
        z = _STD.cdf((math.log(x) - math.log(self.median_tokens)) / self.sigma)
        zmax = _STD.cdf((math.log(self.max_tokens) - math.log(self.median_tokens)) / self.sigma)
        return z / zmax

    def quantile(self, p: float) -> float:
        """The length at which cdf reaches ``p`` (0 < p <= 1)."""
        if self.sigma == 0:
            return float(min(self.median_tokens, self.max_tokens))
        zmax = _STD.cdf((math.log(self.max_tokens) - math.log(self.median_tokens)) / self.sigma)
        q = min(max(p * zmax, 1e-300), 1 - 1e-16)
        return min(float(self.max_tokens), math.exp(math.log(self.median_tokens) + self.sigma * _STD.inv_cdf(q)))

    def padded_lengths(self, batch: int, points: int = 16) -> list[tuple[int, float]]:
        """(padded length, probability) of a batch of ``batch`` queries, ``points`` slices
        of equal probability of the maximum's distribution (F_max = F^batch); equal lengths
        are merged."""
        out: dict[int, float] = {}
        for i in range(points):
            p_max = (i + 0.5) / points                       # slice median of the maximum
            length = max(1, math.ceil(self.quantile(p_max ** (1.0 / batch))))
            out[length] = out.get(length, 0.0) + 1.0 / points
        return sorted(out.items())

    def steps(self, batch: int) -> int:
        """Optimizer steps of the job (the last batch of an epoch may be short; it is a step)."""
        return math.ceil(self.epochs * math.ceil(self.queries / batch))


@dataclass(frozen=True)
class JobTime:
    batch: int
    step_s: float              # expected step time over padded lengths
    steps: int
    queries_per_s: float
    job_s: float


def job_time(data: Dataset, batch: int, step_s: Callable[[int, int], float], points: int = 16) -> JobTime:
    """Expected time of the job with batches of ``batch``; ``step_s(batch, padded_length)``
    is the simulator's step time."""
    mean = sum(p * step_s(batch, length) for length, p in data.padded_lengths(batch, points))
    steps = data.steps(batch)
    return JobTime(batch, mean, steps, batch / mean, steps * mean)
