"""Cut an op graph into the kernels a GPU software stack would launch.

UNFUSED (eager PyTorch): every operator is a kernel; every intermediate goes
through HBM; a transpose is a copy kernel; attention materialises its scores.
Reshapes and slices are views and launch nothing.

FUSED (what cuBLAS/CUTLASS epilogues, fused norms and FlashAttention do):
- elementwise ops that consume a GEMM's output run as its epilogue (bias,
  activation, gated activation, residual add);
- chains of vector ops (residual add -> norm, transpose -> rotary -> KV append)
  run as one kernel when each consumes the previous one's output and a row of a
  normalisation fits in one SM's shared memory;
- score, softmax and context run as one FlashAttention kernel (scores stay on
  chip); its output transpose is the layout it writes; a training graph built with
  FlashAttention-2's backward (rdusim.graph.flash_backward) has one backward op per
  layer, its own attention kernel (five products of the score shape); such a graph's
  attention ops (attr ``flash``) are FlashAttention's library kernels under UNFUSED too
  (eager PyTorch calling SDPA's flash kernel: the rest of its ops one kernel each);
- a weight dequantised on the fly (``weight.dequant``, rdusim.config.formats) is the
  prologue of the GEMM that reads it (W4A16/W8A16 kernels: Marlin, AWQ, TensorRT-LLM
  weight-only GEMMs): only the stored bytes cross HBM, the dequantisation runs on the
  vector units inside the GEMM kernel -- unless the op says its implementation writes the
  dequantised weight out (attr ``materialised``: bitsandbytes' QLoRA, rdusim.graph.peft),
  which then is a kernel of its own; K and V read from a quantised cache
  (``attn.kv_dequant``) likewise are the prologue of the attention kernel;
- a GEMM input quantised to an FP8/INT8 compute format (``act.quant``) is quantised where
  TensorRT-LLM does it: in the kernel producing that input (the norm kernel, the gated
  activation in the up-projection GEMM's epilogue, the attention kernel writing its output);
- what GPUs cannot fuse: two GEMMs (the intermediate, and any transpose
  between them, goes through HBM), collectives (NCCL kernels), and nothing is
  pipelined across kernels.

A kernel's HBM bytes are its ops' bytes minus tensors produced and consumed
inside it.

XLA's fusions on a TPU follow the same rules (rdusim.engine.tpu): the cut reads two numbers
of the machine, ``on_chip_row_bytes`` (a GPU SM's shared memory, a TPU core's VMEM) and
``elements_per_work_item`` (a GPU CTA's elementwise work, a TPU vector register).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rdusim.config.policy import FusionPolicy
from rdusim.engine.gpu.kernels import (AttentionShape, CollectiveKind, CollectiveShape, GemmShape, Kernel,
                                       KernelClass, KernelWork)
from rdusim.graph.flash_backward import FLASH_ATTR, FLASH_BWD_TAG
from rdusim.graph.decoder import DEQUANT_TAG, KV_DEQUANT_TAG, MATERIALISED, QUANT_TAG
from rdusim.graph.opgraph import OpGraph
from rdusim.graph.ops import Op, OpKind
from rdusim.graph.tensor import EXTERNAL_ROLES, DType

ATTENTION_TAGS = frozenset({"attn.score", "attn.softmax", "attn.context", "attn.alibi", "attn.mask", FLASH_BWD_TAG})
# views: no kernel, no bytes; a consumer reads the part it needs
VIEW_KINDS = frozenset({OpKind.RESHAPE, OpKind.SLICE})
# vector ops a GEMM epilogue can apply tile by tile (no row reductions, no layout change)
_EPILOGUE_KINDS = frozenset({OpKind.ELEMENTWISE})
# conversions run in the prologue of the kernel reading their output (fused)
PROLOGUE_TAGS = frozenset({DEQUANT_TAG, KV_DEQUANT_TAG})
# format conversions a GEMM or attention kernel runs on its vector units (prologue or epilogue)
CONVERT_TAGS = PROLOGUE_TAGS | {QUANT_TAG}


def op_class(op: Op) -> KernelClass:
    if op.kind.is_collective:
        return KernelClass.COLLECTIVE
    if op.tag in ATTENTION_TAGS:
        return KernelClass.ATTENTION
    if op.kind == OpKind.GEMM:
        return KernelClass.GEMM
    if op.kind == OpKind.EMBEDDING:
        return KernelClass.EMBEDDING
    return KernelClass.VECTOR


@dataclass
class _Group:
    cls: KernelClass
    ops: list[Op] = field(default_factory=list)


class _Partitioner:
    def __init__(self, graph: OpGraph, policy: FusionPolicy, arch):
        self.graph, self.policy, self.arch = graph, policy, arch
        self.alias: dict[str, str] = {}          # view tensor -> the tensor it aliases
        self.producer: dict[str, int] = {}       # root tensor -> group index
        self.consumers: dict[str, set[int]] = {}  # root tensor -> groups reading it
        self.groups: list[_Group] = []
        self.pending: list[Op] = []              # prologue ops waiting for the kernel that reads them

    def root(self, name: str) -> str:
        while name in self.alias:
            name = self.alias[name]
        return name

    def activation_inputs(self, op: Op) -> list[str]:
        return [self.root(t.name) for t in op.inputs if t.role not in EXTERNAL_ROLES]

    def run(self) -> list[_Group]:
        for op in self.graph.ops:
            if op.kind in VIEW_KINDS:              # a view: no kernel, no bytes
                for t in op.outputs:
                    self.alias[t.name] = self.root(op.inputs[0].name)
                continue
            if self.policy == FusionPolicy.FUSED and op.tag in PROLOGUE_TAGS and not op.attr(MATERIALISED):
                self.pending.append(op)            # placed with the first op reading it
                continue
            idx = self.place(op)
            self.record(op, idx)
        for op in self.pending:                    # read by nothing: a kernel of its own
            self.groups.append(_Group(op_class(op), [op]))
            self.record(op, len(self.groups) - 1)
        return self.groups

    def record(self, op: Op, idx: int) -> None:
        for r in self.activation_inputs(op):
            self.consumers.setdefault(r, set()).add(idx)
        for t in op.outputs:
            self.producer[t.name] = idx

    def take_prologues(self, op: Op) -> list[Op]:
        """The pending prologue ops whose outputs ``op`` reads (they join its kernel)."""
        reads = set(self.activation_inputs(op))
        mine = [p for p in self.pending if any(t.name in reads for t in p.outputs)]
        self.pending = [p for p in self.pending if p not in mine]
        return mine

    def place(self, op: Op) -> int:
        cls = op_class(op)
        flash = cls == KernelClass.ATTENTION and bool(op.attr(FLASH_ATTR))
        if self.policy == FusionPolicy.UNFUSED and cls == KernelClass.ATTENTION and not flash:
            # eager attention: batched GEMMs and a softmax kernel, scores through HBM
            cls = KernelClass.GEMM if op.kind == OpKind.GEMM else KernelClass.VECTOR
        prologues = self.take_prologues(op) if self.pending else []
        if (self.policy == FusionPolicy.FUSED or flash) and self.groups and self.joins_last(op, cls):
            idx = len(self.groups) - 1
            self.groups[-1].ops.extend([*prologues, op])
        else:
            self.groups.append(_Group(cls, [*prologues, op]))
            idx = len(self.groups) - 1
        for p in prologues:
            self.record(p, idx)
        return idx

    def joins_last(self, op: Op, cls: KernelClass) -> bool:
        last_idx = len(self.groups) - 1
        last = self.groups[-1]
        if not any(self.producer.get(r) == last_idx for r in self.activation_inputs(op)):
            return False        # fusion follows data: only a consumer of the last kernel joins it
        if cls == KernelClass.ATTENTION:
            return last.cls == KernelClass.ATTENTION
        if cls != KernelClass.VECTOR:
            return False
        if last.cls == KernelClass.GEMM:
            return op.kind in _EPILOGUE_KINDS and op.tag != "attn.kv_append"
        if last.cls == KernelClass.ATTENTION:
            # FlashAttention writes any layout, and the format the next GEMM reads
            return op.kind in (OpKind.TRANSPOSE, OpKind.CONCAT) or op.tag == QUANT_TAG
        if last.cls == KernelClass.VECTOR:
            return op.kind != OpKind.NORM or self.row_fits_in_smem(op)
        return False

    def row_fits_in_smem(self, op: Op) -> bool:
        x = op.inputs[0]
        return x.shape[-1] * x.dtype.nbytes * 2 <= self.arch.on_chip_row_bytes


def partition(graph: OpGraph, policy: FusionPolicy, arch) -> tuple[Kernel, ...]:
    """The kernels one TP rank launches for ``graph``, in launch order."""
    p = _Partitioner(graph, policy, arch)
    groups = p.run()
    return tuple(_kernel(p, i, g) for i, g in enumerate(groups))


def _kernel(p: _Partitioner, idx: int, g: _Group) -> Kernel:
    flops = sum(o.flops for o in g.ops)
    nbytes = 0.0
    for o in g.ops:
        internal_in = sum(t.nbytes for t in o.inputs
                          if t.role not in EXTERNAL_ROLES and p.producer.get(p.root(t.name)) == idx)
        internal_out = sum(t.nbytes for t in o.outputs if p.consumers.get(t.name) == {idx})
        nbytes += max(0.0, o.bytes_read - internal_in) + max(0.0, o.bytes_written - internal_out)
    main = _main_op(g)
    tensor = g.cls in (KernelClass.GEMM, KernelClass.ATTENTION)
    work = KernelWork(cls=g.cls, flops=flops, hbm_bytes=nbytes, work_items=_work_items(p, g, main),
                      gemm=_gemm_shape(main) if g.cls == KernelClass.GEMM else None,
                      attention=_attention_shape(g) if g.cls == KernelClass.ATTENTION else None,
                      collective=_collective_shape(main) if g.cls == KernelClass.COLLECTIVE else None,
                      convert_flops=sum(o.flops for o in g.ops if o.tag in CONVERT_TAGS) if tensor else 0.0,
                      dtype=_tensor_format(g) if tensor else DType.BF16)
    tag = "attn" if g.cls == KernelClass.ATTENTION and len(g.ops) > 1 else main.tag
    name = main.name if len(g.ops) == 1 else f"{main.name}+{len(g.ops) - 1}"
    return Kernel(name, tuple(o.name for o in g.ops), tag, main.layer, work)


def _main_op(g: _Group) -> Op:
    for o in g.ops:
        if o.kind == OpKind.GEMM or o.kind.is_collective:
            return o
    for o in g.ops:
        if o.kind == OpKind.NORM:
            return o
    return g.ops[0]


def _tensor_format(g: _Group) -> DType:
    """The format the kernel's tensor cores multiply in: its (first) GEMM's operands' format
    when both are at it, else the wider of the two (a bf16 query against an fp8 cache
    computes in bf16, the cache dequantised in the prologue)."""
    op = next(o for o in g.ops if o.kind == OpKind.GEMM)
    a, b = op.inputs[0].dtype, op.inputs[1].dtype
    return a if a == b else max((a, b), key=lambda d: d.bits)


def _gemm_shape(op: Op) -> GemmShape:
    batch = int(op.attr("batch", 1))
    m_total = int(op.attr("m"))
    return GemmShape(batch=batch, m=max(1, m_total // batch), n=int(op.attr("n")), k=int(op.attr("k")))


def _attention_shape(g: _Group) -> AttentionShape:
    score = next((o for o in g.ops if o.kind == OpKind.GEMM), None)
    if score is None:
        raise ValueError(f"attention kernel {g.ops[0].name} has no score GEMM")
    s = _gemm_shape(score)
    if score.tag not in ("attn.score", FLASH_BWD_TAG):   # (rows x ctx) @ (ctx x d)
        return AttentionShape(heads=s.batch, rows=s.m, ctx=s.k, head_dim=s.n)
    return AttentionShape(heads=s.batch, rows=s.m, ctx=s.n, head_dim=s.k, matmuls=int(score.attr("matmuls", 2)))


def _collective_shape(op: Op) -> CollectiveShape:
    kind = CollectiveKind.ALLREDUCE if op.kind == OpKind.ALLREDUCE else CollectiveKind.ALLGATHER
    return CollectiveShape(kind, int(op.attr("ranks")), float(op.attr("message_bytes")))


def _work_items(p: _Partitioner, g: _Group, main: Op) -> int:
    """Parallel CTAs a vector kernel offers: one per row for reductions, else element blocks."""
    out = main.outputs[0]
    if main.kind in (OpKind.NORM, OpKind.SOFTMAX):
        return max(1, out.numel // out.shape[-1])
    per_cta = p.arch.elements_per_work_item
    return max(1, math.ceil(max(t.numel for o in g.ops for t in o.outputs) / per_cta))


def kernel_ops(graph: OpGraph, policy: FusionPolicy, arch: GpuArch) -> tuple[tuple[str, ...], ...]:
    """The op names of each kernel :func:`partition` cuts ``graph`` into (what the memory
    check reads: rdusim.memory; ops of no kernel are views)."""
    return tuple(k.ops for k in partition(graph, policy, arch))
