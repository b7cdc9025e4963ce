"""Energy of a serving run (rdusim.serve): what the devices drew while serving its requests.

The serving loop times its steps by interpolating engine steps; energy follows the same
steps' activity through their mechanism, separated by engine steps that tell the terms
apart (rdusim.energy gives each step's dynamic energy from its FLOPs and bytes):

- every step streams the weights once and pays its fixed work, whatever its batch:
  ``E_step`` = 2 d(decode, batch 1) - d(decode, batch 2) at the smallest context;
- every generated token adds its sequence's share at its context ``c`` (its FLOPs, its KV
  reads): ``E_tok(c)`` = d(decode, batch 2, c) - d(decode, batch 1, c), affine in ``c``
  (two anchor contexts);
- every request's prefill adds d(prefill of its prompt) - ``E_step`` (prompt lengths at
  the anchors of ``execution.context_bucket_tokens``, linear between them, as its time);

plus static power of the ``tp`` devices from the first arrival to the last finish.
Preemption recompute and swap traffic are not charged (they are rare in the shipped runs:
``preemptions``). Keys (relative to ``serve.<P>.<M>[.load<i>]``): ``energy_j_per_token``,
``energy_j_per_request``, ``power_w_per_device``.
"""

from __future__ import annotations

import math
from typing import Any

from rdusim.energy import EnergyModel, step_activity
from rdusim.graph.phase import Phase


def _dyn(model: EnergyModel, steps: Any, phase: Phase, batch: int, seq: int) -> float:
    dtype = steps.dep.model.fmt.compute
    return model.dynamic_j(step_activity(steps.engine_step(phase, batch, max(1, seq)), dtype))


def serve_energy(plat: Any, log: Any) -> dict[str, float]:
    """The run's energy metrics (empty when the machine has no ``power:`` block or nothing finished)."""
    steps, dep = getattr(plat, "steps", None), getattr(plat, "dep", None)
    if steps is None or dep is None:       # CoE serving (router and experts alternate): not modelled here
        return {}
    model = EnergyModel.of(dep.arch)
    done = [q for q in log.seqs if q.finish_s == q.finish_s]
    if model is None or not done:
        return {}
    bucket = dep.execution.context_bucket_tokens
    lo, hi = bucket, 4 * bucket
    e_step = 2 * _dyn(model, steps, Phase.DECODE, 1, lo) - _dyn(model, steps, Phase.DECODE, 2, lo)
    tok_lo = _dyn(model, steps, Phase.DECODE, 2, lo) - _dyn(model, steps, Phase.DECODE, 1, lo)
    tok_hi = _dyn(model, steps, Phase.DECODE, 2, hi) - _dyn(model, steps, Phase.DECODE, 1, hi)
    slope = (tok_hi - tok_lo) / (hi - lo)
    prefill: dict[int, float] = {}

    def prefill_j(p: int) -> float:
        x0 = (p // bucket) * bucket
        if x0 not in prefill:
            prefill[x0] = _dyn(model, steps, Phase.PREFILL, 1, x0)
        if x0 + bucket not in prefill:
            prefill[x0 + bucket] = _dyn(model, steps, Phase.PREFILL, 1, x0 + bucket)
        y0, y1 = prefill[x0], prefill[x0 + bucket]
        left = max(x0, 1)
        return y0 + (y1 - y0) * (p - left) / (x0 + bucket - left)

    dynamic = log.steps * e_step
    tokens = 0
    for q in done:
        n = q.output - 1                   # decode tokens (the first comes from the prefill)
        if n > 0:                          # contexts prompt .. prompt + n - 1
            mean_ctx = q.prompt + (n - 1) / 2
            dynamic += n * (tok_lo + slope * (mean_ctx - lo))
        dynamic += prefill_j(q.prompt) - e_step
        tokens += q.output
    span = max(q.finish_s for q in done) - min(q.arrival_s for q in log.seqs)
    if not span > 0 or tokens == 0:
        return {}
    joules = dynamic * dep.tp + model.static_w * dep.tp * span
    out = {"energy_j_per_token": joules / tokens, "energy_j_per_request": joules / len(done),
           "power_w_per_device": joules / dep.tp / span}
    return {k: v for k, v in out.items() if math.isfinite(v)}
