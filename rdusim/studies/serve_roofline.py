"""How far a serving platform's steps run from their roofline: the steps that bound its
latency and its throughput, each timed by the engine as served and in roofline mode
(``execution.ideal``: :mod:`rdusim.engine.roofline`), at the main stream's mean lengths.

- ``decode_b1``: one sequence's decode step at the mean context (prompt + half the output):
  the latency-bound step, far from its roofline where launches and host work dominate;
- ``decode_full``: the largest batch the platform's KV pool holds at that context (at most
  ``max_sequences``): the throughput-bound step;
- ``prefill``: one mean prompt's prefill.

Each gives ``serve.<P>.roofline.<step>.realistic_s`` (the engine's step with the stack's
host work, as the scheduler charges it), ``.ideal_s`` and ``.realistic_over_ideal``.
"""

from __future__ import annotations

from typing import Sequence

from rdusim.engine.stepper import StepModel
from rdusim.graph.phase import Phase
from rdusim.serve.arrivals import Arrival
from rdusim.serve.platform import ServePlatform


def roofline_metrics(plat: ServePlatform, arrivals: Sequence[Arrival]) -> dict[str, float]:
    if not arrivals or plat.kv_blocks < 1:
        return {}
    n = len(arrivals)
    prompt = max(1, round(sum(a.prompt_tokens for a in arrivals) / n))
    context = max(1, round(prompt + sum(a.output_tokens for a in arrivals) / (2 * n)))
    sched = plat.scheduler
    blocks_per_seq = -(-context // sched.kv_block_tokens)
    full = max(1, min(sched.max_sequences, plat.kv_blocks // blocks_per_seq))
    ideal = StepModel(plat.dep.ideal(), plat.steps.cache)
    out: dict[str, float] = {}
    for name, phase, batch, seq in (("decode_b1", Phase.DECODE, 1, context),
                                    ("decode_full", Phase.DECODE, full, context),
                                    ("prefill", Phase.PREFILL, 1, prompt)):
        real = plat.steps.engine_step(phase, batch, seq).time_s
        best = ideal.engine_step(phase, batch, seq).time_s
        out.update({f"roofline.{name}.batch": batch, f"roofline.{name}.tokens": seq,
                    f"roofline.{name}.realistic_s": real, f"roofline.{name}.ideal_s": best,
                    f"roofline.{name}.realistic_over_ideal": real / best if best > 0 else 0.0})
    return out
