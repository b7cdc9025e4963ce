"""Serving many LoRA adapters over one base model (a serve workload's ``adapters:`` block),
beside or instead of a CoE of whole fine-tuned models (rdusim.studies.serve_coe runs both).

Per platform: the base model's weights, its activation workspace and the KV of
``max_sequences`` sequences of ``KV_TOKENS_PER_SEQUENCE`` tokens stay in HBM (the CoE
study's rule); what the stack allocates beyond them holds adapter slots (the adapters'
HBM tier); the rest of the adapters wait in the copy tier the CoE's experts use (DDR on
the SN40L, host DRAM on a DGX) and are switched in on demand over the same links
(``lone_switch_s``). Steps run the base model over every sequence and a batched adapter
kernel over the step's adapters (rdusim.serve.adapters), up to the stack's
``adapters_per_step`` distinct adapters a step (rdusim.serve.multi).

Metric keys: ``serve.P.adapters.<name>`` as the CoE's ``serve.P.coe.<name>``, plus per
platform ``serve.P.adapter_slots``, ``adapter_bytes``, ``adapter_switch_s``, ``adapter_kv_blocks``, ``adapter_oom``.
"""

from __future__ import annotations

from rdusim.config.workload_serve import ServeAdaptersSpec
from rdusim.errors import InputError
from rdusim.engine.coe.switching import lone_switch_s
from rdusim.engine.stepper import StepModel
from rdusim.memory import weight_bytes_per_rank
from rdusim.rows.serve import point_rows
from rdusim.serve.adapters import AdapterCosts, BatchedAdapterKernel, adapter_shape
from rdusim.serve.multi import MultiSetup
from rdusim.serve.platform import hbm_usable_per_device, workspace_bytes

KV_TOKENS_PER_SEQUENCE = 2048   # as the CoE study (rdusim.studies.serve_coe): assumed, half a 4k context


def adapter_setup(name, dep, ad: ServeAdaptersSpec, hottest, cache, rows: list, oom_reasons: dict,
                  file: str = "workload") -> MultiSetup | None:
    sched, tp = dep.stack.scheduler, dep.tp
    shape = cache.get(("adapter_shape", dep.model, tp, ad.rank, ad.targets),
                      lambda: adapter_shape(dep.model, tp, ad.rank, ad.targets))
    if shape.bytes_per_rank <= 0:
        raise InputError(file, "adapters.targets", f"modules {dep.model.name} has (a LoRA adapter on them)",
                         list(ad.targets))
    weights = weight_bytes_per_rank(dep.model, tp)
    kv = sched.max_sequences * dep.model.kv_cache_bytes_per_rank(KV_TOKENS_PER_SEQUENCE, tp)
    allocated = hbm_usable_per_device(dep) * (1 - sched.memory_reserve_fraction)
    left = allocated - weights - workspace_bytes(dep, cache) - kv
    slots = min(ad.count, int(max(0.0, left) // shape.bytes_per_rank))
    rows += point_rows(name, None, None, {"adapter_slots": slots, "adapter_bytes": shape.bytes_per_rank * tp,
                                          "adapter_oom": int(slots < 1)})
    if slots < 1:
        oom_reasons[f"{name}.adapters"] = (f"{name} tp{tp}: per device the base weights {weights / 1e9:.2f} GB, "
                                           f"workspace and KV of {sched.max_sequences} sequences leave "
                                           f"{max(left, 0) / 1e9:.3f} GB, less than one adapter "
                                           f"({shape.bytes_per_rank / 1e6:.1f} MB)")
        return None
    switch = lone_switch_s(dep.arch, tp, shape.bytes_per_rank * tp)
    blocks = int(kv // dep.model.kv_cache_bytes_per_rank(sched.kv_block_tokens, tp))
    rows += point_rows(name, None, None, {"adapter_switch_s": switch, "adapter_kv_blocks": blocks})
    return MultiSetup(AdapterCosts(StepModel(dep, cache), BatchedAdapterKernel.on(dep.arch, shape)),
                      slots=slots, cache_policy=ad.cache.policy, switch_s=switch, per_step=sched.adapters_per_step,
                      max_sequences=sched.max_sequences, max_batched_tokens=sched.max_batched_tokens,
                      kv_block_tokens=sched.kv_block_tokens, kv_blocks=blocks,
                      request_s=dep.stack.costs.per_request_s, model_load_s=0.0, router=None, hottest=hottest)
