"""Gradient (activation) checkpointing: each decoder layer keeps only its input from the
forward pass and recomputes its own forward just before its backward (Chen et al., 2016;
``torch.utils.checkpoint`` around each layer, as Hugging Face's
``gradient_checkpointing_enable`` does).

The rewrite copies a layer's forward ops (``<name>.rc``, attr ``pass=recompute``) in front
of that layer's first backward op, and points the layer's backward ops at the recomputed
tensors; the layer's input, produced by the layer before, stays the saved one.
"""

from __future__ import annotations

from dataclasses import replace

from rdusim.graph.ops import Op
from rdusim.graph.tensor import Tensor

RC = ".rc"


def recompute_layers(fwd: list[Op], back: list[Op]) -> list[Op]:
    by_block: dict[str, list[Op]] = {}
    for op in fwd:
        if op.block.startswith("L"):
            by_block.setdefault(op.block, []).append(op)
    produced = {block: {t.name for op in ops for t in op.outputs} for block, ops in by_block.items()}
    out: list[Op] = []
    done: set[str] = set()
    for op in back:
        block = op.block
        if block in by_block and block not in done:
            out.extend(_recompute(by_block[block], produced[block]))
            done.add(block)
        if block in produced:
            op = replace(op, inputs=tuple(_rc(t, produced[block]) for t in op.inputs))
        out.append(op)
    return out


def _rc(t: Tensor, names: set[str]) -> Tensor:
    return t.renamed(t.name + RC) if t.name in names else t


def _recompute(ops: list[Op], names: set[str]) -> list[Op]:
    return [replace(op, name=op.name + RC, inputs=tuple(_rc(t, names) for t in op.inputs),
                    outputs=tuple(_rc(t, names) for t in op.outputs),
                    attrs=op.attrs + (("pass", "recompute"),)) for op in ops]
