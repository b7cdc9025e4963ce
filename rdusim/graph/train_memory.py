"""What one device holds during a training step, read off the step's graph.

* weights: every weight the rank holds, in its stored format (NF4 with its block scales
  under QLoRA), idle experts included;
* trainable weights get one gradient each in their own dtype, and AdamW keeps two fp32
  moments per trainable element (no fp32 master copy, as in rdusim.graph.training);
* saved activations: forward tensors a backward op reads, of those the machine's kernels
  write to memory at all (a fused kernel's internals are recomputed, not saved: FlashAttention's
  scores, rdusim.workspace). With checkpointing only what
  the backward and the recompute read from the forward stays (each layer's input, the
  head and loss tensors), plus the largest one layer's recomputed tensors alive at once.

The allocator's slack is the stack's, added by whoever checks the total against a device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from rdusim.graph.ops import Op
from rdusim.graph.tensor import Tensor, TensorRole

ADAM_STATE_BYTES_PER_ELEMENT = 8.0       # two fp32 moments


@dataclass(frozen=True)
class TrainingMemory:
    frozen_weight_bytes: float
    trainable_weight_bytes: float
    gradient_bytes: float
    optimizer_bytes: float
    activation_bytes: float

    @property
    def total_bytes(self) -> float:
        return (self.frozen_weight_bytes + self.trainable_weight_bytes + self.gradient_bytes
                + self.optimizer_bytes + self.activation_bytes)

    def parts(self) -> dict[str, float]:
        return {"weights": self.frozen_weight_bytes + self.trainable_weight_bytes,
                "gradients": self.gradient_bytes, "optimizer": self.optimizer_bytes,
                "activations": self.activation_bytes}


def _pass(op: Op) -> str:
    return str(op.attr("pass", "forward"))


def training_memory(ops: list[Op], idle: Iterable[Tensor], trainable: frozenset[str] | None,
                    materialised: frozenset[str] | None = None) -> TrainingMemory:
    """``trainable``: names of the weights that train (None: every weight); ``materialised``:
    the activations the machine's kernels write to memory (rdusim.workspace, from the kernel
    cut its timing uses: FlashAttention keeps no score matrix to save), None: every one."""
    weights = {t.name: t for op in ops for t in op.inputs if t.role == TensorRole.WEIGHT}
    weights |= {t.name: t for t in idle if t.role == TensorRole.WEIGHT}
    trains = {n: t for n, t in weights.items() if trainable is None or n in trainable}
    frozen = sum(t.nbytes for n, t in weights.items() if n not in trains)
    tw = sum(t.nbytes for t in trains.values())
    states = sum(t.numel * t.density * ADAM_STATE_BYTES_PER_ELEMENT for t in trains.values())
    return TrainingMemory(frozen, tw, tw, states, saved_activation_bytes(ops, materialised))


def saved_activation_bytes(ops: list[Op], materialised: frozenset[str] | None = None) -> float:
    kept = (lambda t: True) if materialised is None else (lambda t: t.name in materialised)
    fwd_out = {t.name: t for op in ops if _pass(op) == "forward" for t in op.outputs
               if t.role == TensorRole.ACTIVATION and kept(t)}
    saved: dict[str, Tensor] = {}
    layer_rc: dict[str, dict[str, Tensor]] = {}
    rc_out = {t.name: (op.block, t) for op in ops if _pass(op) == "recompute" for t in op.outputs if kept(t)}
    for op in ops:
        if _pass(op) not in ("backward", "recompute"):
            continue
        for t in op.inputs:
            if t.name in fwd_out:
                saved[t.name] = t
            elif _pass(op) == "backward" and t.name in rc_out:
                block, rt = rc_out[t.name]
                layer_rc.setdefault(block, {})[t.name] = rt
    peak_rc = max((sum(t.nbytes for t in d.values()) for d in layer_rc.values()), default=0.0)
    return float(sum(t.nbytes for t in saved.values()) + peak_rc)
