"""A CoE spanning the nodes of a cluster: experts placed per node, the router on node 0.

Placement (:func:`place`): ``round_robin`` puts expert e on node e mod k; ``popularity``
deals the experts in order of expected popularity to the nodes in turn (the hottest on the
router's node), so every node gets a like share of the traffic.

Serving (:func:`serve_nodes`), batches back to back as on one node: the router runs on
node 0 over the batch's prompts; then every node serves, at the same time as the others,
the batch's experts it hosts, in order of first appearance, each switched into that node's
HBM if its cache misses it (the node's own expert cache, the lone switch time: no
prefetch) and run on its prompts. Prompts for an expert on another node travel there over
the inter-node network: their token ids (``prompt_tokens`` x ``TOKEN_ID_BYTES`` each) before
the node starts, and the generated tokens back to node 0 (which holds the request) when it
is done, each send one network latency plus bytes over the cluster's per-device NICs
(:meth:`rdusim.config.cluster.ClusterSpec.send_s`). An expert recomputes its own prefill from
the tokens, so no activations cross. The batch ends when the last node's answers are back.

Each batch record keeps the one-node fields for the critical node (the one that finished
last): ``switch_s`` and ``expert_s`` are its chain and ``router_network_s`` its sends, so
``latency_s = router_s + router_network_s + switch_s + expert_s``; ``hits`` / ``misses`` /
``bytes_copied`` count every node, ``nodes_used`` the nodes the batch reached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from rdusim.config.workload_coe import ExpertPlacement
from rdusim.engine.coe.cache import ExpertCache
from rdusim.engine.coe.serving import ServingSetup, _distinct_in_order
from rdusim.engine.coe.switching import lone_switch_s

TOKEN_ID_BYTES = 4          # a token id as serving runtimes pass it (int32)


def place(experts: int, nodes: int, placement: ExpertPlacement, hottest: Sequence[int]) -> np.ndarray:
    """``node_of[e]``: the node hosting expert ``e``."""
    node_of = np.empty(experts, dtype=np.int64)
    if placement == ExpertPlacement.ROUND_ROBIN:
        node_of[:] = np.arange(experts) % nodes
        return node_of
    order = list(hottest) + [e for e in range(experts) if e not in set(hottest)]
    for rank, e in enumerate(order):
        node_of[e] = rank % nodes
    return node_of


@dataclass(frozen=True)
class NodesBatchRecord:
    batch: int
    prompts: int
    distinct_experts: int
    hits: int
    misses: int
    router_s: float
    router_network_s: float    # the critical node's prompt send and answer return over the network
    switch_s: float            # the critical node's exposed switching
    expert_s: float            # the critical node's expert runs
    latency_s: float
    hbm_contention_s: float    # always 0: no prefetch across nodes
    bytes_copied: float        # every node's expert copies
    network_bytes: float       # token ids and answers that crossed the network
    nodes_used: int
    critical_node: int
    start_s: float


def serve_nodes(nodes: Sequence[ServingSetup], node_of: np.ndarray, routes: Sequence[np.ndarray], *,
                send_s: Callable[[float], float], prompt_tokens: int, output_tokens: int,
                trace: list | None = None) -> tuple[NodesBatchRecord, ...]:
    """Serve the batches over ``len(nodes)`` nodes (``nodes[j]``: node j's setup: its HBM
    slots and hottest experts; node 0 also runs the router)."""
    if any(s.prefetch for s in nodes):
        raise ValueError("prefetch is not modelled for a CoE spanning nodes")
    caches = [ExpertCache(s.slots, s.policy, hottest=s.hottest, warm=s.hottest) for s in nodes]
    copy_s = [lone_switch_s(s.arch, s.devices, s.expert_bytes) for s in nodes]
    records: list[NodesBatchRecord] = []
    where = node_of.tolist()
    run_of: dict[tuple[int, int], float] = {}     # (node, prompts on one expert) -> the expert's run
    sends: dict[float, float] = {}

    def send(nbytes: float) -> float:
        t = sends.get(nbytes)
        if t is None:
            t = sends[nbytes] = send_s(nbytes)
        return t

    now = 0.0
    for i, prompts in enumerate(routes):
        t0 = now
        order, counts = _distinct_in_order(prompts)
        t_r = t0 + nodes[0].router_s(len(prompts))
        _span(trace, 0, "router", t0, t_r, "router")
        hits = misses = 0
        copied = moved = 0.0
        ends = []
        by_node: dict[int, list[tuple[int, int]]] = {}
        for e, n in zip(order, counts):
            by_node.setdefault(where[e], []).append((e, n))
        for j in sorted(by_node):
            setup, mine, cache = nodes[j], by_node[j], caches[j]
            sent = sum(n for _, n in mine)
            there = back = 0.0
            if j:
                out_bytes = sent * prompt_tokens * TOKEN_ID_BYTES
                ret_bytes = sent * output_tokens * TOKEN_ID_BYTES
                there, back = send(out_bytes), send(ret_bytes)
                moved += out_bytes + ret_bytes
            t = t_r + there
            switch = expert = 0.0
            for e, n in mine:
                if cache.hit(e):
                    hits += 1
                else:
                    misses += 1
                    copied += setup.expert_bytes
                    _span(trace, j, f"switch expert {e}", t, t + copy_s[j], "switch")
                    t += copy_s[j]
                    switch += copy_s[j]
                run = run_of.get((j, n))
                if run is None:
                    run = run_of[(j, n)] = setup.expert_s(n)
                _span(trace, j, f"expert {e} x{n}", t, t + run, "expert")
                t += run
                expert += run
            ends.append((t + back, j, there + back, switch, expert))
        end, crit, net, switch, expert = max(ends)
        now = end
        records.append(NodesBatchRecord(i, len(prompts), len(order), hits, misses, t_r - t0, net, switch, expert,
                                        end - t0, 0.0, copied, moved, len(ends), crit, t0))
    return tuple(records)


def _span(trace: list | None, node: int, name: str, start: float, end: float, tid: str) -> None:
    if trace is not None:
        trace.append((f"node{node} {name}" if node else name, start, end, tid))
