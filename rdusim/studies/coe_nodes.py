"""CoE platforms spanning the nodes of a cluster (``clusters.<platform>`` in a coe workload).

The router and its KV cache sit on node 0; every node's HBM holds its own experts' slots
beside the experts' KV caches and workspace (node 0 also the router's). The scenarios are
served over the cluster's nodes (:func:`rdusim.engine.coe.placement.serve_nodes`); the
footprint places N experts over k nodes for each k it tries and serves them the same way,
router traffic over the cluster's network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from rdusim.config.cluster import ClusterSpec, load_cluster
from rdusim.config.workload import LoadedWorkload, resolve_path
from rdusim.config.workload_coe import CoeClusterSpec
from rdusim.engine.coe.capacity import Capacity, node_capacity
from rdusim.engine.coe.placement import place, serve_nodes
from rdusim.errors import InputError


@dataclass(frozen=True)
class CoeCluster:
    cluster: ClusterSpec
    spec: CoeClusterSpec


def load(loaded: LoadedWorkload) -> dict[str, CoeCluster]:
    """The platforms that span a cluster's nodes (``clusters:``)."""
    return {name: _load_one(loaded, name, plat, f"clusters.{name}") for name, plat in loaded.spec.clusters.items()}


def load_footprint(loaded: LoadedWorkload) -> dict[str, CoeCluster]:
    """The platforms whose footprint places experts over a cluster's nodes (``footprint.clusters:``)."""
    return {name: _load_one(loaded, name, plat, f"footprint.clusters.{name}")
            for name, plat in loaded.spec.footprint.clusters.items()}


def _load_one(loaded: LoadedWorkload, name: str, plat: CoeClusterSpec, where: str) -> CoeCluster:
    key = f"{where}.cluster"
    path = resolve_path(plat.cluster, loaded.file)
    if not path.is_file():
        raise InputError(loaded.file, key, "a path to a cluster YAML file", plat.cluster)
    cluster = load_cluster(path)
    arch = loaded.archs[name]
    if cluster.node.name != arch.name or cluster.node.kind != arch.kind:
        raise InputError(loaded.file, key, f"a cluster of {arch.name} nodes (platform {name}'s arch)",
                         f"{plat.cluster} (nodes of {cluster.node.name})")
    if loaded.spec.cache.prefetch:
        raise InputError(loaded.file, "cache.prefetch", f"false with a CoE spanning nodes "
                         f"({where.rsplit('.', 1)[0]}:); prefetch is modelled on one node only", True)
    return CoeCluster(cluster, plat)


def capacities(pr, sc) -> tuple[Capacity, Capacity]:
    """(node 0 with the router, a node without it)."""
    first = pr.capacity(sc)
    other = node_capacity(pr.arch, pr.tp, pr.expert_bytes, pr.pinned_bytes(sc) - pr.router_bytes)
    return first, other


def fits(pr, sc, experts: int, nodes: int, node_of: np.ndarray) -> Optional[str]:
    first, other = capacities(pr, sc)
    hosted = np.bincount(node_of, minlength=nodes)
    for j in range(nodes):
        why = (first if j == 0 else other).fits(int(hosted[j]))
        if why is not None:
            return f"node {j} of {nodes}: {why}"
    return None


def node_of(pr, experts: int, nodes: int, hottest: Sequence[int]) -> np.ndarray:
    return place(experts, nodes, pr.coe_cluster.spec.placement, hottest)


def serve(pr, sc, experts: int, nodes: int, hottest: Sequence[int], routes, *, all_resident: bool = False,
          trace: list | None = None):
    """Serve ``routes`` with ``experts`` placed over ``nodes`` nodes of the platform's cluster
    (``all_resident``: every node's experts in its HBM, the footprint's ideal)."""
    where = node_of(pr, experts, nodes, hottest)
    first, other = capacities(pr, sc)
    hosted = np.bincount(where, minlength=nodes)
    hosted_hottest: list[list[int]] = [[] for _ in range(nodes)]     # each node's experts, hottest first
    node_list = where.tolist()
    for e in hottest:
        hosted_hottest[node_list[e]].append(e)
    setups = []
    for j in range(nodes):
        mine = tuple(hosted_hottest[j])
        cap = first if j == 0 else other
        slots = int(hosted[j]) if all_resident else min(cap.hbm_experts, int(hosted[j]))
        base = pr.setup(sc, experts, mine, slots=max(1, slots))
        setups.append(base)
    cluster = pr.coe_cluster.cluster
    return NodeRows(serve_nodes(setups, where, routes, send_s=lambda b: cluster.send_s(b, pr.tp),
                                prompt_tokens=pr.loaded.spec.prompt_tokens, output_tokens=sc.output_tokens,
                                trace=trace))


def footprint(pr, spec, sc, metrics, batches: int) -> None:
    """``coe.footprint.<p>.nodes_for<N>`` on a cluster: the fewest nodes k over which N
    experts, placed by the platform's placement with the router on node 0, serve the
    footprint's batches (prompts sent to whichever node hosts their expert, over the
    cluster's network) within the tolerance of the same k nodes with every expert resident
    in its node's HBM. Latency falls as k grows (fewer experts per node), so a bisection."""
    fp = spec.footprint
    book = pr.routings
    for n in sorted(set(spec.sweep_experts) | {spec.experts.count}):
        routes, hottest = book.routes(sc.batch_size, n, batches, 0), book.hottest(n)
        memo: dict[int, bool] = {}

        def near_ideal(k: int) -> bool:
            if k not in memo:
                if fits(pr, sc, n, k, node_of(pr, n, k, hottest)) is not None:
                    memo[k] = False
                else:
                    real = serve(pr, sc, n, k, hottest, routes).tail(spec.warmup_batches)
                    ideal = serve(pr, sc, n, k, hottest, routes, all_resident=True).tail(spec.warmup_batches)
                    memo[k] = real.mean("latency_s") <= (1 + fp.latency_tolerance) * ideal.mean("latency_s")
            return memo[k]

        lo, hi = 1, min(fp.max_nodes, n)
        if not near_ideal(hi):
            continue
        while lo < hi:
            mid = (lo + hi) // 2
            if near_ideal(mid):
                hi = mid
            else:
                lo = mid + 1
        metrics[f"coe.footprint.{pr.name}.nodes_for{n}"] = lo


TRACE_BATCHES = 4       # as the one-node study: batches of replication 0 written to a --trace timeline
DETAIL = ("router_s", "switch_s", "expert_s", "switches_per_batch", "bytes_copied_per_batch",
          "router_network_s", "nodes_used")


def serve_point(pr, sc, experts: int, replications, batches: int, warmup: int, metrics, prefix: str,
                oom_reasons, *, detail: bool = True, trace: list | None = None) -> dict[str, list]:
    """:func:`rdusim.studies.coe._serve_point` for a platform spanning its cluster's nodes:
    the same metrics (means over replications, 95% intervals when several) plus
    ``router_network_s`` and ``nodes_used``."""
    from rdusim.studies.coe_stats import put

    book = pr.routings
    nodes = pr.coe_cluster.cluster.nodes
    hottest = book.hottest(experts)
    reason = fits(pr, sc, experts, nodes, node_of(pr, experts, nodes, hottest))
    metrics[f"{prefix}.oom"] = int(reason is not None)
    if reason is not None:
        oom_reasons[prefix] = reason
        return {}
    reps: dict[str, list] = {"rows": []}
    for i, rep_i in enumerate(replications):
        spans: list | None = [] if (trace is not None and i == 0) else None
        rows = serve(pr, sc, experts, nodes, hottest, book.routes(sc.batch_size, experts, batches, rep_i),
                     trace=spans).tail(warmup)
        if spans and len(rows):
            first = float(rows.start_s[0])
            cut = first + float(rows.latency_s[:TRACE_BATCHES].sum())
            trace.extend((pr.name, *s) for s in spans if first <= s[1] < cut)
        if i == 0:
            reps["rows"].append(rows)
        values = {"latency_s": rows.mean("latency_s"), "hit_rate": rows.hit_rate(),
                  "router_s": rows.mean("router_s"), "switch_s": rows.mean("switch_s"),
                  "expert_s": rows.mean("expert_s"), "switches_per_batch": rows.mean("misses"),
                  "bytes_copied_per_batch": rows.mean("bytes_copied"),
                  "router_network_s": rows.mean("router_network_s"), "nodes_used": rows.mean("nodes_used")}
        for k, v in values.items():
            reps.setdefault(k, []).append(v)
    for k in ("latency_s", "hit_rate") + (DETAIL if detail else ()):
        if len(reps["latency_s"]) > 1:
            put(metrics, f"{prefix}.{k}", reps[k])
        else:
            metrics[f"{prefix}.{k}"] = reps[k][0]
    return reps


class NodeRows:
    """Served batches over nodes with the few column reads the study makes (the one-node
    model's :class:`rdusim.engine.coe.batches.BatchTable` has the same)."""

    def __init__(self, records) -> None:
        self._records = tuple(records)

    def __len__(self) -> int:
        return len(self._records)

    def records(self):
        return self._records

    def tail(self, skip: int) -> "NodeRows":
        return NodeRows(self._records[skip:])

    def column(self, name: str) -> np.ndarray:
        return np.array([getattr(r, name) for r in self._records], dtype=float)

    @property
    def start_s(self) -> np.ndarray:
        return self.column("start_s")

    @property
    def latency_s(self) -> np.ndarray:
        return self.column("latency_s")

    def mean(self, name: str) -> float:
        values = self.column(name)
        return float(values.sum() / len(values)) if len(values) else float("nan")

    def hit_rate(self) -> float:
        accesses = sum(r.hits + r.misses for r in self._records)
        return sum(r.hits for r in self._records) / accesses if accesses else 1.0
