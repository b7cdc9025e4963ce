"""Top-k routing of tokens to experts, per MoE layer, with the run's Generator.

Each layer ranks its experts by a random permutation (drawn once per run); the expert of
rank r has popularity p(r) ~ 1 / (r + 1) ** skew (Zipf; skew 0 or ``uniform``: equal).
A token picks k distinct experts, successively in proportion to p among those left
(the Gumbel top-k draw: the k largest of log p + Gumbel noise), independently per layer.
"""

from __future__ import annotations

import numpy as np

from rdusim.config.offload import RoutingDist


def layer_popularity(layers: int, experts: int, dist: RoutingDist, skew: float,
                     rng: np.random.Generator) -> np.ndarray:
    """(layers, experts) probabilities, each row a permuted Zipf (or uniform) law."""
    s = skew if dist is RoutingDist.ZIPF else 0.0
    base = 1.0 / np.arange(1, experts + 1, dtype=float) ** s
    base /= base.sum()
    return np.stack([base[rng.permutation(experts)] for _ in range(layers)])


def route(popularity: np.ndarray, tokens: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """(layers, experts) token counts: each of ``tokens`` tokens to its top-k experts per layer."""
    layers, experts = popularity.shape
    keys = np.log(popularity)[:, None, :] + rng.gumbel(size=(layers, tokens, experts))
    top = np.argpartition(-keys, k - 1, axis=2)[:, :, :k] if k < experts else \
        np.broadcast_to(np.arange(experts), (layers, tokens, experts))
    counts = np.zeros((layers, experts), dtype=np.int64)
    for layer in range(layers):
        counts[layer] = np.bincount(top[layer].ravel(), minlength=experts)
    return counts
