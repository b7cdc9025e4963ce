"""One platform ready to serve: its deployment, step model, KV-block pool and copy costs.

The KV pool is what HBM holds beside everything else, by the one memory rule of
:mod:`rdusim.memory`: per device, the HBM's usable bytes (capacity less the arch's
``reserved_bytes``), less the share the stack leaves unallocated
(``memory_reserve_fraction``, vLLM's 1 - gpu_memory_utilization), less the weights one
TP rank holds and the activation workspace of the largest step (a prefill of
``max_batched_tokens`` tokens), in blocks of ``kv_block_tokens`` tokens whose bytes come
from the one KV formula, ``ModelConfig.kv_cache_bytes_per_rank``. The pool stays in HBM
(an SN40L could spill KV to DDR; serving here does not).
A swapped-out sequence's blocks travel over the node's copy links (DDR on the SN40L,
host DRAM over PCIe on a DGX), timed by the CoE switching model's flow network.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

from rdusim.config.deployment import Deployment
from rdusim.config.stack import SchedulerSpec
from rdusim.config.workload_serve import Batching, SchedulerOverride
from rdusim.engine.coe.switching import lone_switch_s
from rdusim.memory import weight_bytes_per_rank
from rdusim.cache import RunCache
from rdusim.engine.stepper import StepModel
from rdusim.memory import activation_workspace_bytes, device_tiers, usable_bytes
from rdusim.serve.arrivals import Arrival
from rdusim.serve.continuous import run_continuous
from rdusim.serve.server import RunLog, ServerSetup, kv_block_pool
from rdusim.serve.static import run_static


def with_scheduler(dep: Deployment, over: SchedulerOverride) -> Deployment:
    """The deployment with the workload's scheduler settings put over its stack's."""
    changes = {f.name: getattr(over, f.name) for f in dataclasses.fields(over) if getattr(over, f.name) is not None}
    if not changes:
        return dep
    sched = dataclasses.replace(dep.stack.scheduler, **changes)
    return dataclasses.replace(dep, stack=dataclasses.replace(dep.stack, scheduler=sched))


def hbm_usable_per_device(dep: Deployment) -> float:
    return usable_bytes(device_tiers(dep.arch)[0])


def workspace_bytes(dep: Deployment, cache: RunCache) -> float:
    """Activation workspace of the largest step: a prefill of max_batched_tokens tokens."""
    tokens = min(dep.stack.scheduler.max_batched_tokens, dep.model.max_position_embeddings)
    return cache.get(("workspace", dep.arch, dep.model, dep.tp, dep.fusion, dep.execution, tokens),
                     lambda: activation_workspace_bytes(dep, 1, tokens))


@dataclass
class ServePlatform:
    name: str
    dep: Deployment
    steps: StepModel
    weight_bytes: float        # per device
    block_bytes: float         # one KV block, per device
    kv_blocks: int
    workspace_bytes: float = 0.0   # activation workspace, per device

    @classmethod
    def build(cls, name: str, dep: Deployment, cache: RunCache, pinned_bytes: float = 0.0) -> "ServePlatform":
        """``pinned_bytes``: other per-device HBM residents (a CoE's router and expert slots)."""
        sched = dep.stack.scheduler
        weights = cache.get(("weights", dep.model, dep.tp), lambda: weight_bytes_per_rank(dep.model, dep.tp))
        block = float(dep.model.kv_cache_bytes_per_rank(sched.kv_block_tokens, dep.tp))
        work = workspace_bytes(dep, cache)
        blocks = kv_block_pool(hbm_usable_per_device(dep), weights + work + pinned_bytes,
                               sched.memory_reserve_fraction, block)
        return cls(name, dep, StepModel(dep, cache), weights, block, blocks, work)

    @property
    def scheduler(self) -> SchedulerSpec:
        return self.dep.stack.scheduler

    def oom_reason(self) -> str:
        """Why the KV pool holds no block (the platform's OOM reason), in the pool's own terms."""
        usable = hbm_usable_per_device(self.dep)
        f = self.scheduler.memory_reserve_fraction
        left = usable * (1 - f) - self.weight_bytes - self.workspace_bytes
        return (f"per device: weights {self.weight_bytes / 1e9:.2f} GB + activation workspace "
                f"{self.workspace_bytes / 1e9:.2f} GB leave {max(left, 0.0) / 1e9:.3f} GB of the "
                f"{usable * (1 - f) / 1e9:.2f} GB the stack allocates ({1 - f:.0%} of {usable / 1e9:.2f} GB usable "
                f"HBM), less than one KV block "
                f"({self.block_bytes / 1e6:.3f} MB)")

    @property
    def max_context(self) -> int:
        return self.dep.model.max_position_embeddings

    def setup(self) -> ServerSetup:
        arch, tp, block = self.dep.arch, self.dep.tp, self.block_bytes
        swap = lru_cache(maxsize=None)(lambda n: lone_switch_s(arch, tp, n * block * tp))
        return ServerSetup(self.steps, self.scheduler, self.kv_blocks, self.dep.stack.costs.per_request_s,
                           swap, watermark_blocks=max(1, self.kv_blocks // 100))

    def serve(self, batching: Batching, arrivals: Sequence[Arrival], warmup: int = 0) -> RunLog:
        run = run_continuous if batching == Batching.CONTINUOUS else run_static
        return run(self.setup(), arrivals, warmup)
