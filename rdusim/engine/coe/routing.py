"""Which expert each prompt goes to: uniform, Zipf, or a trace of expert ids."""

from __future__ import annotations

import numpy as np

from rdusim.config.workload_coe import RoutingKind, RoutingSpec


def popularity(spec: RoutingSpec, experts: int) -> np.ndarray:
    """Probability of each expert (expert 0 is the hottest under Zipf)."""
    if spec.distribution == RoutingKind.ZIPF:
        w = 1.0 / np.arange(1, experts + 1, dtype=float) ** spec.skew
        return w / w.sum()
    return np.full(experts, 1.0 / experts)


def route(spec: RoutingSpec, experts: int, prompts: int, rng: np.random.Generator,
          trace: tuple[int, ...] = ()) -> np.ndarray:
    """Expert id of each of ``prompts`` prompts, in arrival order."""
    if spec.distribution == RoutingKind.TRACE:
        ids = np.resize(np.asarray(trace, dtype=int), prompts)
        return ids % experts
    return rng.choice(experts, size=prompts, p=popularity(spec, experts))


def hottest_first(spec: RoutingSpec, experts: int, trace: tuple[int, ...] = ()) -> list[int]:
    """Experts by descending expected popularity (what a static pinning policy would pin)."""
    if spec.distribution == RoutingKind.TRACE and trace:
        counts = np.bincount(np.asarray(trace) % experts, minlength=experts)
        return [int(i) for i in np.argsort(-counts, kind="stable")]
    return list(range(experts))
