"""Energy of a serving run (rdusim.serve): what the devices drew while serving its requests.

The serving loop times its steps by interpolating engine steps; energy follows the same
steps' activity through their mechanism, separated by engine steps that tell the terms
apart (rdusim.energy gives each step's dynamic energy from its FLOPs and bytes), per model
run (:class:`StepEnergy`):

- every step streams the weights once and pays its fixed work, whatever its batch:
  ``E_step`` = 2 d(decode, batch 1) - d(decode, batch 2) at the smallest context;
- every generated token adds its sequence's share at its context ``c`` (its FLOPs, its KV
  reads): ``E_tok(c)`` = d(decode, batch 2, c) - d(decode, batch 1, c), affine in ``c``
  (two anchor contexts);
- every request's prefill adds d(prefill of its prompt) - ``E_step`` (prompt lengths at
  the anchors of ``execution.context_bucket_tokens``, linear between them, as its time),
  less what it did not compute: a prefix-cache hit of ``s`` tokens skips the work of the
  prompt's first ``s`` tokens, d(prefill of ``s``) - ``E_step`` (their FLOPs and bytes; the
  tokens after them still attend to them, so their work is the rest of the prompt's);
  a request whose KV was computed elsewhere (disaggregated decode, ``kv_in``) skips it alike;

plus static power of the ``tp`` devices from the first arrival to the last finish.
A CoE (:func:`coe_serve_energy`) adds the router's steps and prefills (its own
:class:`StepEnergy`), counts the experts' steps (``RunLog.expert_steps``: one weight stream
per expert per step) and every expert copied into HBM (the cache's misses: its bytes read
from where experts live -- the spill tier, else host memory over the host link -- and
written to HBM, rdusim.coe_cost.copy_j_per_byte).
Preemption recompute and swap traffic are not charged (they are rare in the shipped runs:
``preemptions``). Keys (relative to ``serve.<P>.<M>[.load<i>]``): ``energy_j_per_token``,
``energy_j_per_request``, ``power_w_per_device``.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from rdusim.coe_cost import copy_j_per_byte
from rdusim.energy import EnergyModel, step_activity
from rdusim.graph.phase import Phase


class StepEnergy:
    """The dynamic-energy terms of one model's steps on one device (module docstring)."""

    def __init__(self, model: EnergyModel, steps: Any):
        self.model, self.steps = model, steps
        self.bucket = bucket = steps.dep.execution.context_bucket_tokens
        self.lo, hi = bucket, 4 * bucket
        d1, d2 = self._dyn(Phase.DECODE, 1, bucket), self._dyn(Phase.DECODE, 2, bucket)
        self.e_step = 2 * d1 - d2
        self.tok_lo = d2 - d1
        tok_hi = self._dyn(Phase.DECODE, 2, hi) - self._dyn(Phase.DECODE, 1, hi)
        self.slope = (tok_hi - self.tok_lo) / (hi - self.lo)
        self._prefill: dict[int, float] = {}

    def _dyn(self, phase: Phase, batch: int, seq: int) -> float:
        dtype = self.steps.dep.model.fmt.compute
        return self.model.dynamic_j(step_activity(self.steps.engine_step(phase, batch, max(1, seq)), dtype))

    def prefill_j(self, p: int) -> float:
        """A prefill step of ``p`` tokens, linear between the context anchors."""
        bucket, prefill = self.bucket, self._prefill
        x0 = (p // bucket) * bucket
        if x0 not in prefill:
            prefill[x0] = self._dyn(Phase.PREFILL, 1, x0)
        if x0 + bucket not in prefill:
            prefill[x0 + bucket] = self._dyn(Phase.PREFILL, 1, x0 + bucket)
        y0, y1 = prefill[x0], prefill[x0 + bucket]
        left = max(x0, 1)
        return y0 + (y1 - y0) * (p - left) / (x0 + bucket - left)

    def skipped_j(self, s: int) -> float:
        """The work of a prompt's first ``s`` tokens, not computed (a prefix-cache hit)."""
        return self.prefill_j(s) - self.e_step if s > 0 else 0.0

    def request_j(self, q: Any) -> float:
        """A request's own work beyond its steps' fixed work: its prefill (less the tokens
        whose KV arrived computed) and its decode tokens."""
        dynamic = 0.0
        n = q.output - 1                   # decode tokens (the first comes from the prefill)
        if n > 0:                          # contexts prompt .. prompt + n - 1
            mean_ctx = q.prompt + (n - 1) / 2
            dynamic += n * (self.tok_lo + self.slope * (mean_ctx - self.lo))
        dynamic += self.prefill_j(q.prompt) - self.e_step
        return dynamic - self.skipped_j(min(q.kv_in, q.prompt))

    def run_j(self, steps: int, seqs: list, hit_runs: Optional[dict] = None, block: int = 0) -> float:
        """``steps`` steps of this model serving ``seqs`` (a prefix cache's ``hit_runs``:
        blocks of ``block`` tokens found cached -> admissions that found them)."""
        dynamic = steps * self.e_step
        for q in seqs:
            dynamic += self.request_j(q)
        for blocks, times in sorted((hit_runs or {}).items()):
            dynamic -= times * self.skipped_j(blocks * block)
        return dynamic


def _metrics(model: EnergyModel, dynamic: float, devices: int, log: Any) -> dict[str, float]:
    """Per-token, per-request and per-device figures of ``dynamic`` joules over the run
    (all devices) plus static power of ``devices`` devices from the first arrival to the last finish."""
    done = [q for q in log.seqs if q.finish_s == q.finish_s]
    tokens = sum(q.output for q in done)
    if not done:
        return {}
    span = max(q.finish_s for q in done) - min(q.arrival_s for q in log.seqs)
    if not span > 0 or tokens == 0:
        return {}
    joules = dynamic + model.static_w * devices * span
    out = {"energy_j_per_token": joules / tokens, "energy_j_per_request": joules / len(done),
           "power_w_per_device": joules / devices / span}
    return {k: v for k, v in out.items() if math.isfinite(v)}


def serve_energy(plat: Any, log: Any) -> dict[str, float]:
    """The run's energy metrics (empty when the machine has no ``power:`` block or nothing finished)."""
    steps, dep = getattr(plat, "steps", None), getattr(plat, "dep", None)
    if steps is None or dep is None:       # a probe with no model behind it
        return {}
    model = EnergyModel.of(dep.arch)
    done = [q for q in log.seqs if q.finish_s == q.finish_s]
    if model is None or not done:
        return {}
    pc = log.prefix_cache
    dynamic = StepEnergy(model, steps).run_j(log.steps, done, pc.hit_runs if pc is not None else None,
                                             dep.stack.scheduler.kv_block_tokens)
    return _metrics(model, dynamic * dep.tp, dep.tp, log)


def coe_serve_energy(router: Any, expert: Any, expert_bytes: float, log: Any, copies: int) -> dict[str, float]:
    """A CoE serving run's energy metrics: ``router`` and ``expert`` the StepModels of the
    router and of an expert (the node's ``tp`` devices), ``copies`` experts of
    ``expert_bytes`` (the whole model, over the node) copied into HBM."""
    dep = expert.dep
    model = EnergyModel.of(dep.arch)
    done = [q for q in log.seqs if q.finish_s == q.finish_s]
    if model is None or not done:
        return {}
    r = StepEnergy(model, router)
    dynamic = StepEnergy(model, expert).run_j(log.expert_steps, done)
    dynamic += log.router_steps * r.e_step + sum(r.prefill_j(q.prompt) - r.e_step for q in done)
    return _metrics(model, dynamic * dep.tp + copies * expert_bytes * copy_j_per_byte(model), dep.tp, log)
