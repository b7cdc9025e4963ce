"""FlashAttention-2's backward in a training graph (Dao, 2023, Algorithm 2).

The forward keeps no score matrix: besides its output O it writes the logsumexp ``L`` of
each query row's scores (``<layer>.attn.softmax`` gets a second output,
``<layer>.attn.lse``: fp32, one per row). The backward is one kernel per layer
(``<layer>.attn.bwd_flash``, tag ``attn.flash_bwd``) that reads Q, K, V, O, dO and L and
writes dQ, dK, dV: per block it recomputes S = Q K^T and P = exp(S - L), then
dV = P^T dO, dP = dO V^T, dS = P o (dP - rowsum(dO o O)), dQ = dS K, dK = dS^T Q -- five
matrix products of the forward's score shape (the forward's two, times 2.5) and the
softmax's vector work twice (recomputed, then differentiated). Nothing of size
rows x keys reaches memory in either pass, so no score or probability matrix is saved
for the backward (rdusim.workspace reads that off the graph: the forward's scores and
probabilities are produced and read inside its attention kernel only).

Without it (an eager attention, HF ``attn_implementation="eager"``) the backward is the
generic one of rdusim.graph.training: it reads the forward's probabilities (dV) and scores
(the softmax backward), which are therefore saved.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Mapping, Optional

from rdusim.graph.ops import Op, OpKind
from rdusim.graph.tensor import DType, Tensor

FLASH_BWD_TAG = "attn.flash_bwd"
FLASH_ATTR = "flash"         # a forward attention op run by FlashAttention's kernel (whatever the stack fuses)
BWD_MATMULS = 5              # recomputed S, dV, dP, dQ, dK
FWD_MATMULS = 2              # S, O
_SOFTMAX_TAG = "attn.softmax"
_BETWEEN = ("attn.alibi", "attn.mask")      # score adjustments between the score GEMM and the softmax
_FORWARD_TAGS = ("attn.score", _SOFTMAX_TAG, "attn.context") + _BETWEEN


def lse_name(softmax: Op) -> str:
    return softmax.name.rsplit(".", 1)[0] + ".lse"


def with_lse(fwd: list[Op]) -> list[Op]:
    """The forward with each attention softmax also writing its rows' logsumexp, and its
    attention ops marked as FlashAttention's (``flash``: one library kernel even in an eager
    stack, rdusim.engine.gpu.fusion_rules)."""
    out = []
    for op in fwd:
        if op.tag in _FORWARD_TAGS:
            op = replace(op, attrs=op.attrs + ((FLASH_ATTR, True),))
        if op.tag == _SOFTMAX_TAG and op.kind == OpKind.SOFTMAX:
            p = op.outputs[0]
            lse = Tensor(lse_name(op), p.shape[:-1], DType.FP32)
            op = replace(op, outputs=(p, lse), bytes_written=op.bytes_written + lse.nbytes)
        out.append(op)
    return out


def flash_backward(context: Op, dout: Tensor, producer: Mapping[str, Op],
                   wants: Callable[[Tensor], bool]) -> Optional[tuple[Op, list[tuple[Tensor, Tensor]]]]:
    """The backward kernel of the attention whose context GEMM is ``context`` (``dout``: the
    gradient of its output), and (input, gradient) for Q, K, V as far as they need one;
    None when ``context`` is not an attention's context GEMM of this form."""
    probs, v = context.inputs
    softmax = producer.get(probs.name)
    if softmax is None or softmax.tag != _SOFTMAX_TAG or len(softmax.outputs) < 2:
        return None
    src = softmax.inputs[0]
    between = []
    score = producer.get(src.name)
    while score is not None and score.tag in _BETWEEN:
        between.append(score)
        score = producer.get(score.inputs[0].name)
    if score is None or score.tag != "attn.score":
        return None
    q, k = score.inputs
    out, lse = context.outputs[0], softmax.outputs[1]
    reads = (q, k, v, out, dout, lse)
    pairs = [(t, Tensor(f"{context.name.rsplit('.', 1)[0]}.bwd_flash.d{x}", t.shape, t.dtype))
             for x, t in zip("qkv", (q, k, v)) if wants(t)]
    if not pairs:
        return None
    vector = 2.0 * softmax.flops + sum(op.flops for op in between)
    flops = (BWD_MATMULS / FWD_MATMULS) * (score.flops + context.flops) + vector
    op = Op(f"{context.name.rsplit('.', 1)[0]}.bwd_flash", OpKind.GEMM, reads, tuple(g for _, g in pairs), flops,
            float(sum(t.nbytes for t in reads)), float(sum(g.nbytes for _, g in pairs)),
            layer=context.layer, tag=FLASH_BWD_TAG, block=context.block,
            attrs=tuple(a for a in score.attrs if a[0] != FLASH_ATTR) + (("matmuls", BWD_MATMULS), (FLASH_ATTR, True)))
    return op, pairs
