"""Joules and dollars of a served request: what studies report next to every time.

Energy (:mod:`rdusim.energy`) comes from the activity the engine recorded in each step of
the request -- the prefill step and every decode step, interpolated between the anchor
steps by the same linear rule as their times (:class:`rdusim.engine.stepper.StepModel`)
-- plus static power while the devices wait on the stack's per-request host work.
Dollars are the devices' rental price (``price:``, :class:`rdusim.config.machine_cost.CostBlocks`)
over the time they are held. Both are for the devices the deployment uses (``tp``), and
per output token (``batch x output_tokens`` tokens a request batch generates).

A study calls :func:`request_costs` with a deployment and its :class:`InferenceTiming`, or
:func:`job_costs` with any work's devices, time, per-device activity and tokens (a
fine-tuning job: its steps' :func:`rdusim.energy.step_activity` scaled by the step count);
a machine with no ``power:`` block gets no joules, one with no price no dollars.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

from rdusim.energy import Activity, EnergyModel, idle, step_activity
from rdusim.graph.phase import Phase
from rdusim.engine.stepper import StepModel
from rdusim.rows.serve import ServeRow

HOUR_S = 3600.0


def usd(machine: Any, devices: int, seconds: float) -> Optional[float]:
    """Rent of ``devices`` devices of ``machine`` for ``seconds`` (None: no published price)."""
    p = machine.price_per_device_hour_usd
    return None if p is None else p * devices * seconds / HOUR_S


def rent_rows(machine: Any, devices: int, seconds: float, ci: Optional[tuple[float, float]],
              tokens: int) -> dict[str, tuple[float, Optional[tuple[float, float]]]]:
    """``cost_usd`` (rent of ``devices`` devices for ``seconds``) and ``usd_per_mtoken`` (per
    million of ``tokens``), each with ``ci`` -- an interval of ``seconds`` -- scaled alike;
    empty when the machine has no published price."""
    rent = usd(machine, devices, 1.0)
    if rent is None:
        return {}
    per_token = rent / tokens * 1e6
    scaled = (lambda k: None if ci is None else (ci[0] * k, ci[1] * k))
    return {"cost_usd": (rent * seconds, scaled(rent)), "usd_per_mtoken": (per_token * seconds, scaled(per_token))}


def decode_activity(steps: Any, batch: int, first_context: int, n: int) -> Activity:
    """The activity of ``n`` decode steps from ``first_context`` (per device): each anchor
    step's activity weighted as :meth:`StepModel.decode_sums` weights its time."""
    dtype = steps.dep.model.fmt.compute
    xs = steps._anchor_list(first_context, first_context + n - 1)
    weight = [0.0] * len(xs)
    j = 0
    for c in range(first_context, first_context + n):
        while j + 1 < len(xs) and xs[j + 1] <= c:
            j += 1
        if c <= xs[j] or j + 1 == len(xs):
            weight[j] += 1.0
        else:
            f = (c - xs[j]) / (xs[j + 1] - xs[j])
            weight[j] += 1.0 - f
            weight[j + 1] += f
    total = Activity(0.0, dtype=dtype)
    for x, w in zip(xs, weight):
        if w:
            total = total + step_activity(steps.engine_step(Phase.DECODE, batch, x), dtype).scaled(w)
    return total


def request_activity(dep: Any, timing: Any, prompt_tokens: int, output_tokens: int, batch: int,
                     cache: Any = None) -> Activity:
    """One device's activity over a request batch: idle through the per-request host work,
    then the prefill step and ``output_tokens - 1`` decode steps."""
    steps = StepModel(dep, cache)
    dtype = dep.model.fmt.compute
    a = idle(float(timing.request_s.get("host", 0.0))) + step_activity(steps.prefill(batch, prompt_tokens), dtype)
    if output_tokens > 1:
        a = a + decode_activity(steps, batch, prompt_tokens, output_tokens - 1)
    return a


def job_costs(machine: Any, devices: int, seconds: float, activity: Optional[Activity], tokens: float,
              jobs: float = 1.0) -> dict[str, float]:
    """Joules and dollars of any piece of work -- a request batch, a training job, a CoE
    batch -- that holds ``devices`` devices of ``machine`` for ``seconds``, each doing
    ``activity`` (per device: build it with :func:`rdusim.energy.step_activity` and
    ``Activity.scaled`` / ``+``; None: no energy), producing ``tokens`` tokens in ``jobs``
    units (requests, jobs). By metric name: ``energy_j``, ``energy_j_per_token``,
    ``energy_j_per_request`` (per one of ``jobs``), ``power_w_per_device`` where the machine
    has a ``power:`` block; ``cost_usd``, ``usd_per_mtoken`` where it has a price. Static
    power is charged over ``seconds`` (the activity's own time is not used for it)."""
    out: dict[str, float] = {}
    model = EnergyModel.of(machine)
    if model is not None and activity is not None and seconds > 0:
        joules = (model.static_w * seconds + model.dynamic_j(activity)) * devices
        out.update({"energy_j": joules, "energy_j_per_token": joules / tokens if tokens else 0.0,
                    "energy_j_per_request": joules / jobs,
                    "power_w_per_device": joules / devices / seconds})
    rent = usd(machine, devices, seconds)
    if rent is not None:
        out.update({"cost_usd": rent, "usd_per_mtoken": rent / tokens * 1e6 if tokens else 0.0})
    return out


def request_costs(dep: Any, timing: Any, prompt_tokens: int, output_tokens: int, batch: int,
                  cache: Any = None) -> dict[str, float]:
    """Energy and rent of a request batch on the ``dep.tp`` devices it occupies, for the
    ``batch x output_tokens`` tokens it generates (:func:`job_costs`)."""
    a = request_activity(dep, timing, prompt_tokens, output_tokens, batch, cache) if dep.arch.power else None
    return job_costs(dep.arch, dep.tp, timing.latency_s, a, batch * output_tokens, batch)


def summary_lines(table: Any, platforms: list, scope: Any) -> list[str]:
    """The printed table of a model run's joules and dollars (``table``: (platform, scope) ->
    {metric: value})."""
    rows = [(p, table.get((p, scope), {})) for p in platforms]
    rows = [(p, d) for p, d in rows if "energy_j" in d or "cost_usd" in d]
    if not rows:
        return []
    lines = ["", "Energy and cost of the request (the devices it occupies; price: the arch file's, dated)",
             f"{'platform':<12} " + " ".join(f"{c:>11}" for c in ("J/token", "J/request", "W/device", "$/Mtoken"))]
    for p, d in rows:
        cells = [f"{d[k]:>11.3f}" if k in d else f"{'-':>11}"
                 for k in ("energy_j_per_token", "energy_j_per_request", "power_w_per_device")]
        cells.append(f"{d['usd_per_mtoken']:>11.2f}" if "usd_per_mtoken" in d else f"{'no price':>11}")
        lines.append(f"{p:<12} " + " ".join(cells))
    return lines


def serve_rent_rows(rows: list, loaded: Any) -> list:
    """``usd_per_mtoken`` at every serving point that has a throughput: the rent of the
    platform's ``tp`` devices per second over the generated tokens per second it sustained
    there (serving rows, :class:`rdusim.rows.serve.ServeRow`); none for a machine with no price."""
    out = []
    names = {"output_tokens_per_s": "usd_per_mtoken",                 # at each load point
             "capacity.output_tokens_per_s": "capacity.usd_per_mtoken"}  # at the best rate meeting the SLO
    for r in rows:
        if r.metric not in names or r.platform is None or not r.value or not math.isfinite(r.value):
            continue
        rent = usd(loaded.archs[r.platform], loaded.spec.platforms[r.platform].tp, 1.0)
        if rent is not None:
            out.append(ServeRow(r.platform, r.mode, r.load, names[r.metric], rent / r.value * 1e6))
    return out


def job_rows(machine: Any, devices: int, job: Any, lengths: Any, steps: Mapping[int, Any], dtype: Any) -> dict[str, float]:
    """A training job's ``job_usd`` (rent of ``devices`` devices for ``job.job_s``),
    ``job_energy_j`` and ``power_w_per_device``: its ``job.steps`` steps, each the expected
    step over the padded lengths (``lengths``: (length, probability) pairs, the same weights
    as its time; ``steps``: the simulated step at each length), plus static power over the job."""
    activity = None
    for length, p in lengths:
        a = step_activity(steps[length], dtype).scaled(p)
        activity = a if activity is None else activity + a
    if activity is not None:
        activity = activity.scaled(job.steps)
    got = job_costs(machine, devices, job.job_s, activity, tokens=0)
    names = {"cost_usd": "job_usd", "energy_j": "job_energy_j", "power_w_per_device": "power_w_per_device"}
    return {names[k]: v for k, v in got.items() if k in names}
