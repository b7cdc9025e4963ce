"""What the schedulers share: the step costs they ask, a request's state, the run's log.

A scheduler is a discrete-event simulation over two kinds of events -- a request
arrives, a step of the machine ends -- with the step's duration from
:class:`StepCosts` (a :class:`rdusim.engine.stepper.StepModel` in studies; a fake with
fixed times where a test checks queueing logic only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np

from rdusim.config.stack import SchedulerSpec
from rdusim.serve.arrivals import Arrival


class StepCosts(Protocol):
    def decode_s(self, batch: int, context: float) -> float: ...
    def decode_run_s(self, batch: int, context: float, steps: int) -> np.ndarray: ...
    def packed_prefill_s(self, pieces: Sequence[tuple[int, int]]) -> float: ...
    def mixed_s(self, pieces: Sequence[tuple[int, int]], decode_batch: int, decode_context: float) -> float: ...


@dataclass(frozen=True)
class ServerSetup:
    costs: StepCosts
    scheduler: SchedulerSpec
    kv_blocks: int                         # KV-cache blocks on every device (the pool)
    request_s: float = 0.0                 # stack's per-request host work, once per admitting step
    swap_s: Callable[[int], float] = lambda blocks: 0.0   # copy of ``blocks`` KV blocks out (or in)
    watermark_blocks: int = 0              # kept free at admission (vLLM: 1% of the pool)

    @property
    def block_tokens(self) -> int:
        return self.scheduler.kv_block_tokens


class Seq:
    """One request in the server."""

    __slots__ = ("id", "arrival_s", "prompt", "output", "expert", "generated", "prefilled", "target",
                 "blocks", "start_s", "first_token_s", "finish_s", "preemptions", "switches", "swapped")

    def __init__(self, i: int, a: Arrival):
        self.id = i
        self.arrival_s = a.arrival_s
        self.prompt = a.prompt_tokens
        self.output = a.output_tokens
        self.expert = a.expert
        self.generated = 0          # output tokens produced
        self.prefilled = 0          # tokens of the current prefill target already computed
        self.target = a.prompt_tokens   # tokens to prefill (prompt, or prompt + generated after recompute)
        self.blocks = 0             # KV blocks held on the devices
        self.start_s = math.nan     # first scheduled
        self.first_token_s = math.nan
        self.finish_s = math.nan
        self.preemptions = 0
        self.switches = 0           # expert switches this request waited for (CoE)
        self.swapped = False

    @property
    def context(self) -> int:
        """Tokens in the sequence (prompt + generated)."""
        return self.prompt + self.generated

    @property
    def in_prefill(self) -> bool:
        return self.prefilled < self.target

    def blocks_for(self, tokens: int, block: int) -> int:
        return -(-tokens // block)


@dataclass
class RunLog:
    """Everything a run produced: every request, and state samples over time."""

    seqs: list[Seq]
    rejected: int = 0              # could never fit (longer than the context, or than the KV pool)
    rejected_kv: int = 0
    truncated: int = 0
    steps: int = 0
    preemptions: int = 0
    swap_s: float = 0.0
    kv_blocks: int = 0
    # samples: time, KV blocks used, waiting (queued) requests, running requests
    t: list[float] = field(default_factory=list)
    kv: list[int] = field(default_factory=list)
    queue: list[int] = field(default_factory=list)
    running: list[int] = field(default_factory=list)
    spans: list[tuple] = field(default_factory=list)   # (seq id, name, start, end) for a trace

    def sample(self, now: float, kv: int, queue: int, running: int) -> None:
        self.t.append(now)
        self.kv.append(kv)
        self.queue.append(queue)
        self.running.append(running)


def kv_block_pool(usable_bytes_per_device: float, resident_bytes_per_device: float, unallocated_fraction: float,
                  block_bytes_per_device: float) -> int:
    """KV blocks that fit on one device: its usable HBM less the share the stack leaves
    unallocated, less what else is resident (weights, activation workspace, ...)."""
    free = usable_bytes_per_device * (1 - unallocated_fraction) - resident_bytes_per_device
    return max(0, int(free // block_bytes_per_device))
