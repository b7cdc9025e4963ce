"""Predicted costs of one expert call and the rule that picks where a missing expert runs.

An expert's device time is its roofline on the tensor-parallel group (FLOPs over the peak
rate at the compute format, weight bytes over the achievable HBM bandwidth), the time the
step model already gives it when the expert is resident. A missing expert either

- is **copied** into HBM over the family's copy paths (``Family.copy_links``, the lone-copy
  time of the flow network: rdusim.engine.coe.switching.lone_switch_s) and then runs there:
  ``copy_s + device_s(n)``; or
- runs **in place** where its weights are (``Family.in_place``): ``in_place_s(n)`` (its
  FLOPs over the executor's rate, its weights over the executor's bandwidth, a call cost,
  and only the ``n`` tokens' activations over the host link there and back).

Fiddler's rule (Kamahori et al. 2024): in place when ``in_place_s(n) < copy_s + device_s(n)``
(for a memory-bound CPU, tokens x CPU time per token against the weight-copy time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rdusim.config.deployment import Deployment
from rdusim.config.offload import OffloadRule
from rdusim.engine.coe.switching import lone_switch_s
from rdusim.engine.family import InPlace
from rdusim.engine.families import family


@dataclass(frozen=True)
class ExpertCosts:
    params: float                 # weight elements of one expert (all its matrices)
    expert_bytes: float           # its stored bytes (scales included), all shards
    activation_bytes: float       # one token's hidden state at the model dtype
    device_rate_flops_per_s: float     # the TP group's peak at the compute format
    device_bandwidth_bytes_per_s: float   # the TP group's achievable HBM bandwidth
    copy_s: float                 # its weights copied into the group's HBM, nothing else moving
    in_place: Optional[InPlace]   # None: the machine cannot run it where its weights are

    def flops(self, tokens: int) -> float:
        return 2.0 * tokens * self.params

    def device_s(self, tokens: int) -> float:
        return max(self.flops(tokens) / self.device_rate_flops_per_s,
                   self.expert_bytes / self.device_bandwidth_bytes_per_s)

    def copy_run_s(self, tokens: int) -> float:
        return self.copy_s + self.device_s(tokens)

    def in_place_s(self, tokens: int) -> float:
        if self.in_place is None:
            raise ValueError("no in-place executor")
        return self.in_place.time_s(self.flops(tokens), self.expert_bytes, tokens * self.activation_bytes)

    def runs_in_place(self, tokens: int, rule: OffloadRule) -> bool:
        """Whether a missing expert with ``tokens`` tokens runs in place under ``rule``."""
        if self.in_place is None or rule is OffloadRule.ALWAYS_COPY:
            return False
        if rule is OffloadRule.ALWAYS_IN_PLACE:
            return True
        return self.in_place_s(tokens) < self.copy_run_s(tokens)


def expert_params(cfg) -> float:
    """Weight elements of one expert MLP (gated: three matrices, else two)."""
    return (3 if cfg.mlp_gated else 2) * cfg.hidden_size * cfg.intermediate_size


def expert_bytes(cfg) -> float:
    """One expert's stored bytes at the weight format, with its scales (one per group of
    ``group_size`` elements, or one per matrix)."""
    f = cfg.fmt
    n = expert_params(cfg)
    scales = 0.0
    if f.scale_bytes:
        scales = (n / f.scale_group if f.scale_group else (3 if cfg.mlp_gated else 2)) * f.scale_bytes
    return n * f.weight.nbytes + scales


def expert_costs(dep: Deployment) -> ExpertCosts:
    """The predicted costs of one expert of ``dep``'s model on its machine (TP ``dep.tp``)."""
    cfg, arch, tp = dep.model, dep.arch, dep.tp
    nbytes = expert_bytes(cfg)
    rate = arch.native_rate(cfg.fmt.compute)
    return ExpertCosts(expert_params(cfg), nbytes, cfg.hidden_size * cfg.torch_dtype.nbytes, tp * rate,
                       tp * arch.device_hbm.effective_bandwidth_bytes_per_s, lone_switch_s(arch, tp, nbytes),
                       family(arch).in_place(arch, cfg.fmt.weight, tp))
