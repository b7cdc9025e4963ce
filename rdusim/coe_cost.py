"""Energy of a CoE batch (rdusim.studies.coe): the router's run, the expert switches' copies,
the experts' runs, and static power of the node's ``tp`` devices over the batch.

- router: the dynamic energy of its request batch (every step's activity, rdusim.cost);
- experts: the batch's ``distinct`` experts each serve an equal share of its prompts
  (``B / distinct``, rounded; the batch tables keep how many experts a batch ran, not how
  the prompts split over them), each share one request batch of the expert model;
- copies: every byte copied into HBM is read from where the experts not in HBM live -- the
  device's spill tier when it has one (the SN40L's DDR), else host memory over the host
  link -- and written to HBM, at those units' energies per byte;
- static: ``tp`` devices x static power x the batch's latency.

Per replication (``latency_s``, ``bytes_copied_per_batch`` and distinct experts are means
over its batches), so the study gives the mean and its 95% interval like every CoE metric.
"""

from __future__ import annotations

from typing import Any, Optional

from rdusim.cost import request_activity
from rdusim.energy import EnergyModel, Unit


def _dynamic(model: EnergyModel, timer: Any, batch: int, tokens: int) -> float:
    t = timer.timing(batch, tokens)
    return model.dynamic_j(request_activity(timer.dep, t, timer.prompt_tokens, tokens, batch, timer.cache))


def copy_j_per_byte(model: EnergyModel) -> float:
    """A byte of an expert copied into HBM: read where the experts not in HBM live (the
    spill tier when the device has one, else host memory over the host link), written to HBM."""
    source = Unit.SPILL if Unit.SPILL in model.j_per_byte else Unit.HOST_LINK
    return model.j_per_byte[source] + model.j_per_byte[Unit.HBM]


def coe_batch_energy(pr: Any, batch: int, tokens: int, router_tokens: int, latency_s: float,
                     bytes_copied: float, distinct: float) -> Optional[float]:
    """Joules of one CoE batch on platform run ``pr`` (None: no ``power:`` block)."""
    model = EnergyModel.of(pr.arch)
    if model is None:
        return None
    devices = pr.tp
    router = _dynamic(model, pr.router, batch, router_tokens)
    k = max(1.0, distinct)
    share = max(1, round(batch / k))
    experts = k * _dynamic(model, pr.expert, share, tokens)
    copies = bytes_copied * copy_j_per_byte(model)
    return devices * (router + experts + model.static_w * latency_s) + copies
