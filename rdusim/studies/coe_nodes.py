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
from rdusim.engine.coe.capacity import Capacity
from rdusim.engine.coe.placement import NodesBatchRecord, place, serve_nodes
from rdusim.engine.coe.placement_closed import (COLUMNS, NodesOutcome, latency_and_resident_latency, nodes_outcome,
                                                serve_nodes_closed)
from rdusim.engine.evaluation import Evaluation, current
from rdusim.errors import InputError
from rdusim.rows.coe import CoeFootprintRow, CoePointRow
from rdusim.studies.coe_stats import mean_and_ci


@dataclass(frozen=True)
class CoeCluster:
    cluster: ClusterSpec
    spec: CoeClusterSpec


def load(loaded: LoadedWorkload) -> dict[str, CoeCluster]:
    """The platforms that span a cluster's nodes (``clusters:``)."""
    return {name: _load_one(loaded, name, plat, f"clusters.{name}") for name, plat in loaded.spec.clusters.items()}


def load_footprint(loaded: LoadedWorkload, platforms: Sequence[str]) -> dict[str, CoeCluster]:
    """The platforms (of ``platforms``: those whose footprint is found) whose footprint
    places experts over a cluster's nodes (``footprint.clusters:``)."""
    return {name: _load_one(loaded, name, plat, f"footprint.clusters.{name}")
            for name, plat in loaded.spec.footprint.clusters.items() if name in platforms}


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
    return pr.capacity(sc), pr.capacity(sc, router=False)


def fits(pr, sc, experts: int, nodes: int, node_of: np.ndarray) -> Optional[str]:
    first, other = capacities(pr, sc)
    hosted = np.bincount(node_of, minlength=nodes)
    for j in range(nodes):
        why = (first if j == 0 else other).fits(int(hosted[j]))
        if why is not None:
            return f"node {j} of {nodes}: {why}"
    return None


def all_in_hbm(pr, sc, nodes: int, node_of: np.ndarray) -> bool:
    """Every node has an HBM slot for each expert it hosts."""
    first, other = capacities(pr, sc)
    hosted = np.bincount(node_of, minlength=nodes)
    return bool(hosted[0] <= first.hbm_experts and (hosted[1:] <= other.hbm_experts).all())


def node_of(pr, experts: int, nodes: int, hottest: Sequence[int]) -> np.ndarray:
    return place(experts, nodes, pr.coe_cluster.spec.placement, hottest)


def serve(pr, sc, experts: int, nodes: int, hottest: Sequence[int], rep: int, batches: int, *,
          all_resident: bool = False, trace: list | None = None) -> NodeRows:
    """Serve replication ``rep``'s routing (``batches`` batches) with ``experts`` placed over
    ``nodes`` nodes of the platform's cluster (``all_resident``: every node's experts in its
    HBM, the footprint's ideal). In closed form, what the nodes' caches do with the routing
    kept in the run's cache; the sequential model when a trace is asked for or under
    ``rdusim.engine.evaluation.reference()``."""
    where, setups, routes, kw = _nodes(pr, sc, experts, nodes, hottest, rep, batches, all_resident)
    if trace is not None or current() != Evaluation.CLOSED_FORM:
        return NodeRows.from_records(serve_nodes(setups, where, routes, trace=trace, **kw))
    return NodeRows(serve_nodes_closed(setups, _outcome(pr, sc, experts, nodes, rep, batches, setups, where, routes),
                                       **kw))


def _nodes(pr, sc, experts: int, nodes: int, hottest: Sequence[int], rep: int, batches: int, all_resident: bool):
    """The placement, each node's setup (its experts hottest first; its HBM slots: all of
    them when ``all_resident``), the routing and the timing arguments of a serve."""
    routes = pr.routings.routes(sc.batch_size, experts, batches, rep)
    where = node_of(pr, experts, nodes, hottest)
    first, other = capacities(pr, sc)
    hosted = np.bincount(where, minlength=nodes).tolist()
    hosted_hottest: list[list[int]] = [[] for _ in range(nodes)]     # each node's experts, hottest first
    node_list = where.tolist()
    for e in hottest:
        hosted_hottest[node_list[e]].append(e)
    setups = []
    for j in range(nodes):
        cap = first if j == 0 else other
        slots = hosted[j] if all_resident else min(cap.hbm_experts, hosted[j])
        setups.append(pr.setup(sc, experts, tuple(hosted_hottest[j]), slots=max(1, slots)))
    cluster = pr.coe_cluster.cluster
    send = lambda b: cluster.send_s(b, pr.tp)                 # noqa: E731
    kw = dict(send_s=send, prompt_tokens=pr.loaded.spec.prompt_tokens, output_tokens=sc.output_tokens)
    return where, setups, routes, kw


def _outcome(pr, sc, experts: int, nodes: int, rep: int, batches: int, setups, where, routes) -> NodesOutcome:
    """What the nodes' caches do with the routing (kept in the run's cache)."""
    book = pr.routings
    key = (book.key(sc.batch_size, experts, batches, rep), nodes, pr.coe_cluster.spec.placement,
           tuple(s.slots for s in setups), pr.loaded.spec.cache.policy)
    return book.cache.get_or_compute("coe_nodes_outcome", key, lambda: nodes_outcome(
        setups, where, routes, book.split(sc.batch_size, experts, batches, rep)))


def real_and_ideal_latency(pr, sc, experts: int, nodes: int, hottest: Sequence[int], rep: int, batches: int,
                           warmup: int) -> tuple[float, float]:
    """The mean batch latency after ``warmup`` of :func:`serve` and of ``serve(...,
    all_resident=True)``. In closed form both come from one timing of the real serve's
    outcome: the all-resident serve hits on every access (each node's HBM holds all its
    experts, warm) when every node's hottest list names all the experts it hosts (else,
    and under the reference evaluation, both are served)."""
    if current() == Evaluation.CLOSED_FORM:
        where, setups, routes, kw = _nodes(pr, sc, experts, nodes, hottest, rep, batches, False)
        if all(len(s.hottest) == h for s, h in zip(setups, np.bincount(where, minlength=nodes).tolist())):
            outcome = _outcome(pr, sc, experts, nodes, rep, batches, setups, where, routes)
            real, ideal = latency_and_resident_latency(setups, outcome, **kw)
            return _mean(real[warmup:]), _mean(ideal[warmup:])
    real = serve(pr, sc, experts, nodes, hottest, rep, batches).tail(warmup)
    ideal = serve(pr, sc, experts, nodes, hottest, rep, batches, all_resident=True).tail(warmup)
    return real.mean("latency_s"), ideal.mean("latency_s")


def _mean(values: np.ndarray) -> float:
    """:meth:`NodeRows.mean` of a column."""
    values = np.asarray(values, dtype=float)
    return float(values.sum() / len(values)) if len(values) else float("nan")


def footprint(pr, spec, sc, rows: list, batches: int) -> None:
    """``coe.footprint.<p>.nodes_for<N>`` on a cluster: the fewest nodes k over which N
    experts, placed by the platform's placement with the router on node 0, serve the
    footprint's batches (prompts sent to whichever node hosts their expert, over the
    cluster's network) within the tolerance of the same k nodes with every expert resident
    in its node's HBM. Latency falls as k grows (fewer experts per node), so a bisection."""
    fp = spec.footprint
    book = pr.routings
    closed = current() == Evaluation.CLOSED_FORM
    for n in spec.footprint_counts:
        hottest = book.hottest(n)
        memo: dict[int, bool] = {}
        # In closed form, k nodes each holding all of their experts in HBM from the start (every
        # expert is among the hottest, so each node warms with all of its own) never switch: the
        # serve is its all-resident ideal, bit for bit, and a mean latency m (finite, >= 0, some
        # batch counted) is within any tolerance >= 0 of itself, (1 + tol) * m >= m.
        resident_is_near = (closed and batches > spec.warmup_batches and fp.latency_tolerance >= 0
                            and sorted(hottest) == list(range(n)))

        def near_ideal(k: int) -> bool:
            if k not in memo:
                where = node_of(pr, n, k, hottest)
                if fits(pr, sc, n, k, where) is not None:
                    memo[k] = False
                elif resident_is_near and all_in_hbm(pr, sc, k, where):
                    memo[k] = True
                else:
                    real, ideal = real_and_ideal_latency(pr, sc, n, k, hottest, 0, batches, spec.warmup_batches)
                    memo[k] = real <= (1 + fp.latency_tolerance) * ideal
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
        rows.append(CoeFootprintRow(pr.name, n, lo))


TRACE_BATCHES = 4       # as the one-node study: batches of replication 0 written to a --trace timeline
DETAIL = ("router_s", "switch_s", "expert_s", "switches_per_batch", "bytes_copied_per_batch",
          "router_network_s", "nodes_used")


def serve_point(pr, sc, experts: int, replications, batches: int, warmup: int, out: list, sweep: Optional[int],
                oom_reasons, *, detail: bool = True, trace: list | None = None) -> dict[str, list]:
    """:func:`rdusim.studies.coe._serve_point` for a platform spanning its cluster's nodes:
    the same metrics (means over replications, 95% intervals when several) plus
    ``router_network_s`` and ``nodes_used``, appended to ``out`` as rows."""
    book = pr.routings
    nodes = pr.coe_cluster.cluster.nodes
    hottest = book.hottest(experts)
    reason = fits(pr, sc, experts, nodes, node_of(pr, experts, nodes, hottest))
    oom = CoePointRow(pr.name, sc.batch_size, sc.output_tokens, sweep, "oom", int(reason is not None))
    out.append(oom)
    if reason is not None:
        oom_reasons[oom.prefix()] = reason
        return {}
    reps: dict[str, list] = {"rows": []}
    for i, rep_i in enumerate(replications):
        spans: list | None = [] if (trace is not None and i == 0) else None
        rows = serve(pr, sc, experts, nodes, hottest, rep_i, batches, trace=spans).tail(warmup)
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
        value, ci = mean_and_ci(reps[k])
        out.append(CoePointRow(pr.name, sc.batch_size, sc.output_tokens, sweep, k, value, ci))
    return reps


class NodeRows:
    """Served batches over nodes as columns (a :class:`NodesBatchRecord` field each), with
    the column reads the study makes (the one-node model's
    :class:`rdusim.engine.coe.batches.BatchTable` has the same)."""

    def __init__(self, columns: dict) -> None:
        self._columns = columns

    @classmethod
    def from_records(cls, records) -> "NodeRows":
        return cls({c: np.array([getattr(r, c) for r in records]) for c in COLUMNS})

    def __len__(self) -> int:
        return len(self._columns["batch"])

    def records(self):
        cols = [self._columns[c].tolist() for c in COLUMNS]
        return tuple(NodesBatchRecord(*row) for row in zip(*cols))

    def rows(self) -> list[dict]:
        """:meth:`records` as dicts (field -> Python int or float), without a record object per batch."""
        return [dict(zip(COLUMNS, row)) for row in zip(*(self._columns[c].tolist() for c in COLUMNS))]

    def tail(self, skip: int) -> "NodeRows":
        return NodeRows({c: v[skip:] for c, v in self._columns.items()})

    def column(self, name: str) -> np.ndarray:
        return np.asarray(self._columns[name], dtype=float)

    @property
    def start_s(self) -> np.ndarray:
        return self.column("start_s")

    @property
    def latency_s(self) -> np.ndarray:
        return self.column("latency_s")

    def mean(self, name: str) -> float:
        return _mean(self._columns[name])

    def hit_rate(self) -> float:
        hits, misses = int(self._columns["hits"].sum()), int(self._columns["misses"].sum())
        return hits / (hits + misses) if hits + misses else 1.0
