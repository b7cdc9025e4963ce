"""A CoE spanning nodes (:func:`rdusim.engine.coe.placement.serve_nodes`) in closed form.

Without prefetch nothing on a node overlaps a copy, and a batch's nodes only meet at its
end, so a batch's latency is its router time plus, on the node that finishes last, the
prompts' trip there, its copies (misses x the lone switch time), its experts' runs and
the answers' trip back -- independent of when the batch starts. Which experts hit or
miss each node's cache depends on the routing, the placement, the node's slots and the
policy, not on any time: :func:`nodes_outcome` replays that once (kept in the run's
cache by the study), :func:`serve_nodes_closed` times it with arrays. Equal to the
sequential model within float rounding (``tests/test_coe_nodes.py``); the node that
finishes last is, among equal ends, the highest-numbered one, as there. The footprint's
pair -- a serve and the same nodes with every expert resident, which never copies -- is
timed at once from the one outcome (:func:`latency_and_resident_latency`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from rdusim.engine.coe.cache import ExpertCache
from rdusim.engine.coe.placement import TOKEN_ID_BYTES
from rdusim.engine.coe.outcome import Split, split_batches
from rdusim.engine.coe.serving import ServingSetup
from rdusim.engine.coe.switching import lone_switch_s

COLUMNS = ("batch", "prompts", "distinct_experts", "hits", "misses", "router_s", "router_network_s", "switch_s",
           "expert_s", "latency_s", "hbm_contention_s", "bytes_copied", "network_bytes", "nodes_used",
           "critical_node", "start_s")


@dataclass(frozen=True)
class NodesOutcome:
    """Per batch (rows) and node (columns): the prompts sent to the node, its cache's hits
    and misses, and ``hist[b, j, n]`` its experts serving ``n`` prompts."""

    prompts: np.ndarray
    distinct: np.ndarray
    sent: np.ndarray
    hits: np.ndarray
    misses: np.ndarray
    hist: np.ndarray


def nodes_outcome(nodes: Sequence[ServingSetup], node_of: np.ndarray, routes: Sequence[np.ndarray],
                  split: Split | None = None) -> NodesOutcome:
    """Replay ``routes`` through every node's expert cache (node j: ``nodes[j]``'s slots,
    policy and warm hottest experts), each node seeing its experts in order of first
    appearance in the batch, as the sequential model serves them. ``split``:
    :func:`rdusim.engine.coe.outcome.split_batches` of ``routes`` when the caller has it."""
    prompts, orders, per_expert = split if split is not None else split_batches(routes)
    where = node_of.tolist()
    k, batches = len(nodes), len(routes)
    width = max(prompts, default=0) + 1
    asked: list[list[int]] = [[] for _ in range(k)]    # each node's lookups, batch after batch ...
    asked_in: list[list[int]] = [[] for _ in range(k)]  # ... and the batch of each
    cells: list[int] = []              # each expert served: its (batch, node, prompts) cell of hist, flattened
    for b, (order, counts) in enumerate(zip(orders, per_expert)):
        for e, n in zip(order, counts):
            j = where[e]
            cells.append((b * k + j) * width + n)
            asked[j].append(e)
            asked_in[j].append(b)
    # the nodes' caches are independent: each replays its own lookups (none when it holds them all)
    hit_cells, miss_cells = [], []
    for j, s in enumerate(nodes):
        if not asked[j]:
            continue
        cache = ExpertCache(s.slots, s.policy, hottest=s.hottest, warm=s.hottest)
        looked = [True] * len(asked[j]) if cache.holds_all(asked[j]) else cache.hit_each(asked[j])
        for b, hit in zip(asked_in[j], looked):
            (hit_cells if hit else miss_cells).append(b * k + j)
    hist = np.bincount(np.array(cells, dtype=np.int64), minlength=batches * k * width).reshape(batches, k, width)

    def per_node(c: list[int]) -> np.ndarray:
        return np.bincount(np.array(c, dtype=np.int64), minlength=batches * k).reshape(batches, k)

    sent = (hist * np.arange(width)).sum(axis=2)        # prompts sent to each node
    return NodesOutcome(np.array(prompts, dtype=np.int64), np.array([len(o) for o in orders], dtype=np.int64), sent,
                        per_node(hit_cells), per_node(miss_cells), hist)


@dataclass(frozen=True)
class _Timed:
    """The parts of every batch's chain on every node (rows: batches, columns: nodes)."""

    router: np.ndarray        # per batch
    there: np.ndarray         # the prompts' trip to the node
    back: np.ndarray          # the answers' trip back
    switch: np.ndarray        # the node's copies
    expert: np.ndarray        # the node's expert runs
    used: np.ndarray          # the batch sent the node prompts
    remote: np.ndarray        # ... and the node is not node 0
    out_bytes: np.ndarray
    ret_bytes: np.ndarray

    def ends(self, switch) -> np.ndarray:
        """When each node's answers are back (-inf on nodes a batch does not use)."""
        return np.where(self.used, self.router[:, None] + self.there + switch + self.expert + self.back, -np.inf)


def _timed(nodes: Sequence[ServingSetup], outcome: NodesOutcome, send_s: Callable[[float], float],
           prompt_tokens: int, output_tokens: int) -> _Timed:
    """Every batch's router, trips, copies and expert runs on every node of ``outcome``."""
    if any(s.prefetch for s in nodes):
        raise ValueError("prefetch is not modelled for a CoE spanning nodes")
    k = len(nodes)
    batches = len(outcome.prompts)
    router_of = {p: nodes[0].router_s(p) for p in set(outcome.prompts.tolist())}
    router = np.array([router_of[p] for p in outcome.prompts.tolist()], dtype=float)
    # the nodes usually share their machine and expert timer: each distinct one is asked once
    copy_of: dict[tuple, float] = {}
    for s in nodes:
        c = (id(s.arch), s.devices, s.expert_bytes)
        if c not in copy_of:
            copy_of[c] = lone_switch_s(s.arch, s.devices, s.expert_bytes)
    copy = np.array([copy_of[(id(s.arch), s.devices, s.expert_bytes)] for s in nodes])
    wanted = outcome.hist.any(axis=0)                   # (k, n): some batch puts n prompts on an expert of j
    run_of: dict[tuple, float] = {}
    run = np.zeros(wanted.shape)
    for j, n in zip(*(a.tolist() for a in np.nonzero(wanted))):
        key = (nodes[j].expert_s, n)
        if key not in run_of:
            run_of[key] = nodes[j].expert_s(n)
        run[j, n] = run_of[key]
    used = outcome.sent > 0
    remote = used & (np.arange(k) > 0)[None, :]
    sends: dict[int, float] = {}

    def trip(nbytes: np.ndarray) -> np.ndarray:
        """send_s of each remote node's bytes (each distinct size asked once)."""
        out = np.zeros(nbytes.shape)
        sizes, which = np.unique(nbytes[remote], return_inverse=True)
        for b in sizes.tolist():
            if b not in sends:
                sends[b] = send_s(b)
        out[remote] = np.array([sends[b] for b in sizes.tolist()], dtype=float)[which]
        return out

    out_bytes = outcome.sent * (prompt_tokens * TOKEN_ID_BYTES)
    ret_bytes = outcome.sent * (output_tokens * TOKEN_ID_BYTES)
    expert = np.einsum("bjn,jn->bj", outcome.hist, run) if batches else np.zeros((0, k))
    return _Timed(router, trip(out_bytes), trip(ret_bytes), outcome.misses * copy[None, :], expert, used, remote,
                  out_bytes, ret_bytes)


def serve_nodes_closed(nodes: Sequence[ServingSetup], outcome: NodesOutcome, *, send_s: Callable[[float], float],
                       prompt_tokens: int, output_tokens: int) -> dict[str, np.ndarray]:
    """The columns of :class:`rdusim.engine.coe.placement.NodesBatchRecord` for the batches of
    ``outcome``, served back to back from time 0."""
    t = _timed(nodes, outcome, send_s, prompt_tokens, output_tokens)
    k, batches = len(nodes), len(outcome.prompts)
    end = t.ends(t.switch)
    crit = (k - 1 - np.argmax(end[:, ::-1], axis=1)) if batches else np.zeros(0, dtype=np.int64)
    rows = np.arange(batches)
    latency = end[rows, crit] if batches else np.zeros(0)
    expert_bytes = np.array([s.expert_bytes for s in nodes])
    return {
        "batch": rows, "prompts": outcome.prompts, "distinct_experts": outcome.distinct,
        "hits": outcome.hits.sum(axis=1), "misses": outcome.misses.sum(axis=1), "router_s": t.router,
        "router_network_s": (t.there + t.back)[rows, crit], "switch_s": t.switch[rows, crit],
        "expert_s": t.expert[rows, crit], "latency_s": latency, "hbm_contention_s": np.zeros(batches),
        "bytes_copied": (outcome.misses * expert_bytes[None, :]).sum(axis=1),
        "network_bytes": np.where(t.remote, t.out_bytes + t.ret_bytes, 0).sum(axis=1).astype(float),
        "nodes_used": t.used.sum(axis=1), "critical_node": crit,
        "start_s": np.concatenate(([0.0], np.cumsum(latency)[:-1])) if batches else np.zeros(0),
    }


def latency_and_resident_latency(nodes: Sequence[ServingSetup], outcome: NodesOutcome, *,
                                 send_s: Callable[[float], float], prompt_tokens: int,
                                 output_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``latency_s`` column of :func:`serve_nodes_closed`, and the same batches' latency with
    every node's experts resident in its HBM from the start (every access a hit: no copy):
    the footprint's real and ideal, timed once. A batch's latency is its last node's end."""
    t = _timed(nodes, outcome, send_s, prompt_tokens, output_tokens)
    if not len(outcome.prompts):
        return np.zeros(0), np.zeros(0)
    return t.ends(t.switch).max(axis=1), t.ends(0.0).max(axis=1)
