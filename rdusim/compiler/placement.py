"""Placement inside one kernel: ops -> pipeline stages on PCUs, buffers on PMUs, streams on AGCUs.

Rules (the SN40L paper's description of the compiler, made concrete):

- Every real op is one stage. Compute stages get PCUs in proportion to their work
  (FLOPs over the PCU rate for that kind of work), at least one each and no more than
  their parallelism allows (``MIN_CYCLES_PER_PCU`` of work per PCU), so the pipeline is
  balanced. Move stages (gathers, layout passes, cache appends) run on PMUs only;
  collective stages run on the AGCUs and P2P links.
- A stage's PMUs hold its input buffers (``BUFFER_DEPTH`` tiles of every input: double
  buffering) and its resident operands (off-chip operands needed whole by every tile,
  such as prefill weights), and serve its operand bandwidth: enough PMUs to feed its
  PCUs at the rate they consume when compute-bound, capped at one PMU per PCU.
  A stage gets whichever of capacity or bandwidth needs more PMUs. When the total
  exceeds the socket, the bandwidth share is scaled down; capacity must fit.
- Off-chip streams share the AGCUs in proportion to their bytes.
- Stages are laid out die by die in pipeline order; an edge between dies uses D2D.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping

from rdusim.compiler.dataflow import Node
from rdusim.compiler.plan import Collective, Kernel, Stage, StageKind, Stream, Tier
from rdusim.compiler.target import CompileTarget
from rdusim.config.execution import BUFFER_DEPTH, TILE_BYTES, Buffering  # noqa: F401  (re-exported)
from rdusim.errors import InputError
from rdusim.graph.ops import OpKind

DEFAULT_BUFFERING = Buffering()
MIN_CYCLES_PER_PCU = 64     # a PCU is only given to a stage with at least this much work for it


@dataclass(frozen=True)
class _Read:
    tensor: str
    nbytes: float
    tier: Tier
    resident: bool
    block: float = 0.0


@dataclass
class _StageDraft:
    node: Node
    kind: StageKind
    edges: dict[int, float]
    reads: list[_Read]
    edge_block: dict[int, float]
    write_bytes: float
    write_tier: Tier
    held_bytes: float = 0.0          # operands arriving over edges but needed whole (PMU capacity)

    @property
    def resident_bytes(self) -> float:
        return sum(r.nbytes for r in self.reads if r.resident)

    @property
    def streamed_read_bytes(self) -> float:
        return sum(r.nbytes for r in self.reads if not r.resident)

    @property
    def in_bytes(self) -> float:
        return sum(self.edges.values()) + self.streamed_read_bytes


def stage_kind(node: Node) -> StageKind:
    if node.op.kind.is_collective:
        return StageKind.COLLECTIVE
    return StageKind.COMPUTE if node.op.flops > 0 else StageKind.MOVE


def work_pcu_s(node: Node, in_bytes: float, arch: CompileTarget) -> float:
    """Seconds one PCU would need for the node: its FLOPs, or reading its operands through
    its input port (one PMU's bandwidth: a vector of lanes a cycle), whichever is longer."""
    pcu = arch.socket.pcu
    eff = 1.0 if node.op.kind == OpKind.GEMM else pcu.vector_efficiency
    return max(node.op.flops / (pcu.flops_per_s * eff), in_bytes / arch.socket.pmu.bandwidth_bytes_per_s)


def draft_stage(n: Node, group: Mapping[str, int], consumers: Mapping[str, tuple[str, ...]],
                tiers: Mapping[str, Tier], assume_written: bool = False) -> _StageDraft:
    """The stage ``n`` becomes in a kernel whose ops are ``group`` (name -> stage index).
    ``assume_written``: count its output as leaving the kernel (while the group still grows)."""
    edges: dict[int, float] = {}
    edge_block: dict[int, float] = {}
    offchip = []
    held = 0.0
    biggest = max((o.nbytes for o in n.operands), default=0.0)
    big_numel = max((o.tensor.numel for o in n.operands), default=0)
    gemm = n.op.kind == OpKind.GEMM
    for o in n.operands:
        if o.producer is not None and o.producer in group:
            j = group[o.producer]
            edges[j] = edges.get(j, 0.0) + o.nbytes
            edge_block[j] = max(edge_block.get(j, 0.0), o.block_bytes)
            if gemm and o.nbytes < biggest:
                held += o.nbytes          # the smaller GEMM operand is collected whole
        elif o.nbytes > 0:
            tier = tiers.get(o.tensor.name, Tier.HBM) if o.producer is None else Tier.HBM
            offchip.append((o, tier))
    reads = []
    streamed_one = False
    for o, tier in offchip:
        if gemm:
            # the larger operand streams, the smaller is held whole by every tile
            stream = o.nbytes >= biggest and not streamed_one
        else:
            # same-size operands stream together; broadcast operands (norm weights) are held
            stream = o.tensor.numel >= big_numel
        streamed_one = streamed_one or stream
        reads.append(_Read(o.tensor.name, o.nbytes, tier, not stream, o.block_bytes))
    outs = consumers.get(n.name, ())
    writes_out = n.persistent_out or not outs or assume_written or any(c not in group for c in outs)
    wt = Tier.HBM
    for t in n.op.outputs:
        if t.name in tiers:
            wt = tiers[t.name]
    return _StageDraft(n, stage_kind(n), edges, reads, edge_block, n.out_bytes if writes_out else 0.0, wt, held)


def group_key(nodes: list[Node], consumers: Mapping[str, tuple[str, ...]], tiers: Mapping[str, Tier]) -> tuple:
    """Everything about a group of ops that placement looks at, without their names:
    two groups with equal keys (the same layer at another depth) place identically."""
    index = {n.name: i for i, n in enumerate(nodes)}
    key = []
    for n in nodes:
        op = n.op
        operands = tuple((o.nbytes, o.block_bytes, o.tensor.numel, index.get(o.producer, -1) if o.producer else -2,
                          tiers.get(o.tensor.name, Tier.HBM).value if o.producer is None else "")
                         for o in n.operands)
        outs = consumers.get(n.name, ())
        leaves = n.persistent_out or not outs or any(c not in index for c in outs)
        out_tier = next((tiers[t.name].value for t in op.outputs if t.name in tiers), "")
        key.append((op.kind.value, op.flops, n.out_bytes, leaves, out_tier, operands,
                    op.attr("message_bytes"), op.attr("ranks")))
    return tuple(key)


def _drafts(nodes: list[Node], consumers: Mapping[str, tuple[str, ...]],
            tiers: Mapping[str, Tier]) -> list[_StageDraft]:
    index = {n.name: i for i, n in enumerate(nodes)}
    return [draft_stage(n, index, consumers, tiers) for n in nodes]


def tile_bytes(nbytes: float, tiles: int, block: float = 0.0, largest: float = TILE_BYTES) -> float:
    """Bytes of one buffered tile of a stream of ``nbytes``: 1/tiles of it, at most
    ``largest``, but at least the block its access pattern needs."""
    return min(nbytes, max(min(nbytes / tiles, largest), block))


def capacity_bytes(d: _StageDraft, tiles: int, buffering: Buffering = DEFAULT_BUFFERING) -> float:
    """PMU bytes the stage needs: resident and held operands plus its buffered tiles
    (``buffering.depth`` tiles of every input and output)."""
    big = buffering.tile_bytes
    buffers = sum(tile_bytes(b, tiles, d.edge_block.get(j, 0.0), big) for j, b in d.edges.items())
    buffers += sum(tile_bytes(r.nbytes, tiles, r.block, big) for r in d.reads if not r.resident)
    buffers += tile_bytes(d.write_bytes, tiles, 0.0, big) if d.write_bytes else 0.0
    return d.resident_bytes + d.held_bytes + buffering.depth * buffers


def _share(total: int, weights: list[float], lo: list[int], hi: list[int]) -> list[int]:
    """Split ``total`` units in proportion to ``weights`` with per-item bounds (water filling)."""
    n = len(weights)
    alloc = list(lo)
    free = [i for i in range(n) if weights[i] > 0 and hi[i] > lo[i]]
    left = total - sum(lo)
    while left > 0 and free:
        wsum = sum(weights[i] for i in free)
        capped = [i for i in free if alloc[i] + left * weights[i] / wsum >= hi[i]]
        if not capped:
            exact = {i: left * weights[i] / wsum for i in free}
            base = {i: math.floor(exact[i]) for i in free}
            for i in free:
                alloc[i] += base[i]
            rest = left - sum(base.values())
            for i in sorted(free, key=lambda i: (-(exact[i] - base[i]), i))[:rest]:
                alloc[i] += 1
            return alloc
        for i in capped:
            left -= hi[i] - alloc[i]
            alloc[i] = hi[i]
        free = [i for i in free if i not in capped]
    return alloc


def build_kernel(name: str, nodes: list[Node], consumers: Mapping[str, tuple[str, ...]],
                 tiers: Mapping[str, Tier], arch: CompileTarget, tiles: int,
                 buffering: Buffering = DEFAULT_BUFFERING) -> Kernel:
    sock = arch.socket
    drafts = _drafts(nodes, consumers, tiers)
    # ---- PCUs: in proportion to work, bounded by parallelism ----
    work = [work_pcu_s(d.node, d.in_bytes, arch) if d.kind == StageKind.COMPUTE else 0.0 for d in drafts]
    min_work = MIN_CYCLES_PER_PCU / sock.pcu.clock_hz
    lo = [1 if d.kind == StageKind.COMPUTE else 0 for d in drafts]
    hi = [max(1, math.ceil(w / min_work)) if d.kind == StageKind.COMPUTE else 0 for w, d in zip(work, drafts)]
    pcus = _share(sock.pcu.count, work, lo, hi) if sum(lo) <= sock.pcu.count else lo
    compute_s = [w / p if p else 0.0 for w, p in zip(work, pcus)]
    # ---- PMUs: capacity, then bandwidth, whichever needs more ----
    cap_bytes = [capacity_bytes(d, tiles, buffering) for d in drafts]
    pmu_cap = [math.ceil(c / sock.pmu.capacity_bytes) for c in cap_bytes]
    avail_cap = sock.pmu.count * sock.pmu.capacity_bytes
    resident = sum(d.resident_bytes + d.held_bytes for d in drafts)
    passes = 1
    if sum(pmu_cap) > sock.pmu.count:
        # resident operands do not fit: hold what fits, re-stream the rest in passes
        buffers = sum(cap_bytes) - resident
        room = max(avail_cap - buffers, sock.pmu.capacity_bytes)
        if resident <= 0:   # the stage buffers alone overflow the PMUs: no pass count helps
            raise InputError(getattr(arch, "name", "the RDU arch file"), "socket.pmu.capacity_bytes",
                             f"PMUs large enough for the stage buffers of kernel {name} ({sum(cap_bytes):.4g} bytes "
                             f"in {sock.pmu.count} PMUs)", sock.pmu.capacity_bytes)
        passes = math.ceil(resident / room)
        pmu_cap = [math.ceil((c - (1 - 1 / passes) * (d.resident_bytes + d.held_bytes)) / sock.pmu.capacity_bytes)
                   for c, d in zip(cap_bytes, drafts)]
        pmu_cap = _scale_to(pmu_cap, sock.pmu.count)
    est_s = max(max(compute_s, default=0.0),
                sum(d.in_bytes for d in drafts) / (sock.pmu.count * sock.pmu.bandwidth_bytes_per_s),
                sum(d.streamed_read_bytes * passes + d.resident_bytes + d.write_bytes for d in drafts)
                / sock.hbm.effective_bandwidth_bytes_per_s)
    pmu_bw = []
    for d, p, cs in zip(drafts, pcus, compute_s):
        if d.in_bytes <= 0:
            pmu_bw.append(0)
            continue
        rate = d.in_bytes / cs if cs > 0 else d.in_bytes / est_s if est_s > 0 else 0.0
        if p:
            rate = min(rate, p * sock.pmu.bandwidth_bytes_per_s)
        pmu_bw.append(max(1, math.ceil(rate / sock.pmu.bandwidth_bytes_per_s)))
    extra = [max(0, b - c) for b, c in zip(pmu_bw, pmu_cap)]
    room = sock.pmu.count - sum(pmu_cap)
    if sum(extra) > room:
        f = max(room, 0) / sum(extra)
        extra = [math.floor(e * f) for e in extra]
    pmus = [c + e for c, e in zip(pmu_cap, extra)]
    bw_pmus = [min(pm, b) for pm, b in zip(pmus, pmu_bw)]
    # ---- AGCUs: streams share them in proportion to their bytes ----
    stream_bytes = [r.nbytes for d in drafts for r in d.reads] + [d.write_bytes for d in drafts if d.write_bytes]
    agcu = _agcu_shares(stream_bytes, sock.agcu.count)
    # ---- dies: stages laid out in pipeline order ----
    per_die = sock.pcu.count / sock.dies
    die, used = [], 0
    for i, d in enumerate(drafts):
        if pcus[i]:
            die.append(min(sock.dies - 1, int(used // per_die)) if sock.dies > 1 else 0)
            used += pcus[i]
        else:
            src = [die[j] for j in d.edges]
            die.append(max(src) if src else (min(sock.dies - 1, int(used // per_die)) if sock.dies > 1 else 0))
    streams_of: list[list[Stream]] = []
    s_i = 0
    for d in drafts:
        streams_of.append([Stream(r.tier, False, r.nbytes, r.resident, agcu[s_i + k])
                           for k, r in enumerate(d.reads)])
        s_i += len(d.reads)
    for d, streams in zip(drafts, streams_of):
        if d.write_bytes:
            streams.append(Stream(d.write_tier, True, d.write_bytes, False, agcu[s_i]))
            s_i += 1
    out = []
    for i, (d, streams) in enumerate(zip(drafts, streams_of)):
        op = d.node.op
        coll = None
        if d.kind == StageKind.COLLECTIVE:
            coll = Collective(op.kind.value, float(op.attr("message_bytes", d.node.out_bytes)),
                              int(op.attr("ranks", 1)))
        inputs = tuple(sorted(d.edges))
        out.append(Stage(
            kind=d.kind, flops=op.flops, compute_s=compute_s[i],
            pcus=pcus[i], pmus=pmus[i], pmus_bandwidth=bw_pmus[i], in_bytes=d.in_bytes,
            inputs=inputs, edge_bytes=tuple(d.edges[j] for j in inputs),
            edge_d2d=tuple(die[j] != die[i] for j in inputs), streams=tuple(streams),
            collective=coll, die=die[i]))
    layers = {nd.layer for nd in nodes}
    return Kernel(name, tuple(nd.name for nd in nodes), tuple(out),
                  layer=layers.pop() if len(layers) == 1 else -1, passes=passes, buffer_depth=buffering.depth)


def _scale_to(counts: list[int], total: int) -> list[int]:
    s = sum(counts)
    if s <= total:
        return counts
    return [max(1 if c else 0, math.floor(c * total / s)) for c in counts]


STREAMS_PER_AGCU = 16       # an AGCU interleaves the requests of up to this many streams


def _agcu_shares(stream_bytes: Iterable[float], count: int) -> list[float]:
    """AGCU shares of the kernel's streams: each gets a floor (one interleave slot), the
    rest of the pool goes in proportion to bytes, so big streams are not starved by
    many small ones."""
    b = list(stream_bytes)
    if not b:
        return []
    floor = min(1.0 / STREAMS_PER_AGCU, count / len(b))
    rest = count - floor * len(b)
    total = sum(b)
    return [floor + (rest * x / total if total else rest / len(b)) for x in b]
