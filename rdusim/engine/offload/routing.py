"""Top-k routing of tokens to experts, per MoE layer, with the run's Generator.

Each layer ranks its experts by a random permutation (drawn once per run); the expert of
rank r has popularity p(r) ~ 1 / (r + 1) ** skew (Zipf; skew 0 or ``uniform``: equal).
A token picks k distinct experts, successively in proportion to p among those left
(the Gumbel top-k draw: the k largest of log p + Gumbel noise), independently per layer.
"""

from __future__ import annotations

import numpy as np

from rdusim.config.offload import RoutingDist
from rdusim.errors import InputError


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


def load_trace(path: str, layers: int, experts: int, k: int) -> np.ndarray:
    """A routing trace CSV (header ``token,layer,expert``; k rows per token and layer, tokens
    numbered 0.. in order) as a (tokens, layers, k) array of expert ids. Bad input: InputError."""
    import csv


    rows: dict[tuple[int, int], list[int]] = {}
    try:
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            if header != ["token", "layer", "expert"]:
                raise InputError(path, "(header)", "token,layer,expert", ",".join(header))
            for i, row in enumerate(reader, start=2):
                try:
                    tok, layer, e = (int(v) for v in row)
                except ValueError:
                    raise InputError(path, f"(row {i})", "three integers token,layer,expert", ",".join(row)) from None
                if not (0 <= layer < layers and 0 <= e < experts and tok >= 0):
                    raise InputError(path, f"(row {i})", f"layer in 0..{layers - 1}, expert in 0..{experts - 1}, "
                                     "token >= 0", ",".join(row))
                rows.setdefault((tok, layer), []).append(e)
    except OSError as exc:
        raise InputError(path, "(file)", "a readable routing trace CSV", str(exc)) from None
    tokens = 1 + max((t for t, _ in rows), default=-1)
    out = np.zeros((tokens, layers, k), dtype=np.int64)
    for t in range(tokens):
        for layer in range(layers):
            got = rows.get((t, layer), [])
            if len(got) != k or len(set(got)) != k:
                raise InputError(path, f"(token {t}, layer {layer})", f"{k} distinct experts", got)
            out[t, layer] = got
    if tokens == 0:
        raise InputError(path, "(rows)", "at least one token", 0)
    return out


def trace_counts(trace: np.ndarray, start: int, tokens: int, experts: int) -> np.ndarray:
    """(layers, experts) token counts of ``tokens`` consecutive tokens of ``trace`` from
    ``start``, wrapping around."""
    idx = (start + np.arange(tokens)) % trace.shape[0]
    chosen = trace[idx]                                     # (tokens, layers, k)
    layers = trace.shape[1]
    counts = np.zeros((layers, experts), dtype=np.int64)
    for layer in range(layers):
        counts[layer] = np.bincount(chosen[:, layer, :].ravel(), minlength=experts)
    return counts
