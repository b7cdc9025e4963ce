"""How a fine-tuning step's MoE layers spread their tokens over the experts.

Without a routing model (the workload has no ``routing:``), the *expected load*: a layer's
tokens x k assignments spread as evenly as they go (rdusim.graph.decoder). With one, the
routing model of the experts-as-individuals study (rdusim.engine.offload.routing):

- ``uniform``: every expert equally likely -- the expected load again, exactly;
- ``zipf`` with ``skew``: each expert's share is its probability of being among a token's
  top k under the Gumbel top-k draw from the Zipf popularity (estimated with the run's seed
  over ``SAMPLES`` tokens), divided by k; most popular first;
- ``trace``: the recorded choices' frequency per expert at each layer, sorted, averaged over
  the layers.

A step's graph has identical layers (the kernel repetition of every engine relies on it),
so each layer gets the same profile: the shares of its experts, most loaded first
(``ModelConfig.expert_load``). Dense fine-tuning sends every token to every expert: no
profile. :func:`label` says which was used (the study's ``extra.expert_load``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from rdusim.config.offload import RoutingDist
from rdusim.engine.offload.routing import route

SAMPLES = 20_000          # tokens drawn to estimate a skewed law's top-k inclusion probabilities
_RNG_KEY = 23             # the estimate's own generator: [seed, _RNG_KEY]


@dataclass(frozen=True)
class FinetuneRouting:
    """A workload's ``routing:`` block (as the offload study's: distribution, skew, trace)."""

    distribution: RoutingDist = RoutingDist.UNIFORM
    skew: float = field(default=1.0, metadata={"ge": 0, "le": 10})
    trace: Optional[str] = None   # distribution: trace: the CSV (beside the workload)

    def __post_init__(self) -> None:
        if (self.distribution is RoutingDist.TRACE) != (self.trace is not None):
            raise ValueError("trace", "a CSV path exactly when distribution is trace", self.trace)


def zipf_shares(experts: int, k: int, skew: float, seed: int) -> tuple[float, ...]:
    """Each expert's share of the assignments under a Zipf(skew) top-k law, most popular first."""
    p = 1.0 / np.arange(1, experts + 1, dtype=float) ** skew
    p /= p.sum()
    counts = route(p[None, :], SAMPLES, k, np.random.default_rng([seed, _RNG_KEY]))[0]
    return _shares(counts)


def trace_shares(trace: np.ndarray, experts: int) -> tuple[float, ...]:
    """Shares from a (tokens, layers, k) routing trace: per layer sorted, averaged."""
    layers = trace.shape[1]
    per = np.stack([np.sort(np.bincount(trace[:, i, :].ravel(), minlength=experts))[::-1] for i in range(layers)])
    return _shares(per.mean(axis=0))


def _shares(counts: np.ndarray) -> tuple[float, ...]:
    c = np.sort(np.asarray(counts, dtype=float))[::-1]
    return tuple(float(x) for x in c / c.sum())


def expert_load(routing: Optional[FinetuneRouting], experts: int, k: int, seed: int,
                trace: Optional[np.ndarray] = None) -> Optional[tuple[float, ...]]:
    """The profile a sparse step uses (None: the expected load)."""
    if routing is None or routing.distribution is RoutingDist.UNIFORM or k >= experts:
        return None
    if routing.distribution is RoutingDist.TRACE:
        return trace_shares(trace, experts)
    return zipf_shares(experts, k, routing.skew, seed)


def label(routing: Optional[FinetuneRouting], dense: bool) -> str:
    if dense:
        return "every expert computes every token"
    if routing is None:
        return "expected load (no routing model: tokens x k spread evenly)"
    if routing.distribution is RoutingDist.UNIFORM:
        return "routing model uniform: the expected load (spread evenly)"
    if routing.distribution is RoutingDist.ZIPF:
        return f"routing model zipf skew {routing.skew:g} (top-k inclusion probabilities)"
    return f"routing trace {routing.trace} (per-layer expert frequencies, sorted, averaged)"
