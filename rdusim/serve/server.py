"""What the schedulers share: the step costs they ask, a request's state, the run's log.

A scheduler is a discrete-event simulation over two kinds of events -- a request
arrives, a step of the machine ends -- with the step's duration from
:class:`StepCosts` (a :class:`rdusim.engine.stepper.StepModel` in studies; a fake with
fixed times where a test checks queueing logic only).
"""

from __future__ import annotations

import math
from array import array
from collections import deque
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
                 "blocks", "start_s", "first_token_s", "finish_s", "preemptions", "switches", "swapped",
                 "last_token_s", "waited_s", "queued_s", "prefix", "prefix_tokens", "shared", "kv_in")

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
        self.last_token_s = math.nan  # when its latest token came out
        self.waited_s = 0.0           # time queued again after a preemption (recompute or swap)
        self.queued_s = math.nan      # when it was last preempted (nan: not waiting again)
        self.prefix = a.prefix              # shared prompt prefix id (-1: none)
        self.prefix_tokens = a.prefix_tokens   # its length: the prompt's first tokens
        self.shared: list = []              # hashes of the prefix-cache blocks it reads (rdusim.serve.prefix_cache)
        self.kv_in = 0                # prompt tokens whose KV arrives computed (disaggregated decode)

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
    router_steps: int = 0          # CoE: steps that ran the router (each reads its weights once)
    expert_steps: int = 0          # CoE: (step, expert) segments run (each reads that expert's weights once)
    preemptions: int = 0
    swap_s: float = 0.0
    kv_blocks: int = 0
    # samples: time, KV blocks used, waiting (queued) requests, running requests
    t: list[float] = field(default_factory=list)
    kv: list[int] = field(default_factory=list)
    queue: list[int] = field(default_factory=list)
    running: list[int] = field(default_factory=list)
    spans: list[tuple] = field(default_factory=list)   # (seq id, name, start, end) for a trace
    warmup: int = 0                # requests with a lower id are served, not measured (time between tokens)
    kv_area: float = 0.0           # integral over time of KV blocks held (block-seconds)
    # time between tokens of the measured requests: single gaps, and (step times, tokens per
    # step) of runs of steps every measured sequence of the run took part in
    tbt_s: list = field(default_factory=list)
    tbt_runs: list = field(default_factory=list)
    prefix_cache: object = None    # the run's rdusim.serve.prefix_cache.PrefixCache (None: prefix caching off)

    def sample(self, now: float, kv: int, queue: int, running: int) -> None:
        self.t.append(now)
        self.kv.append(kv)
        self.queue.append(queue)
        self.running.append(running)

    def held(self, blocks: float, seconds: float) -> None:
        """``blocks`` KV blocks held for ``seconds``."""
        self.kv_area += blocks * seconds

    def tokens(self, seqs, first: float, last: float | None = None, steps=None) -> None:
        """Each of ``seqs`` produced a token at ``first`` (and, with ``steps``, the step
        times of a run of steps ending at ``last``, one token each): record the gaps to
        each one's previous token."""
        measured = 0
        for q in seqs:
            if q.id >= self.warmup:
                measured += 1
                if q.last_token_s == q.last_token_s:
                    self.tbt_s.append(first - q.last_token_s)
            q.last_token_s = first if last is None else last
        if measured and steps is not None and len(steps):
            self.tbt_runs.append((steps, measured))

    def tbt(self) -> tuple[np.ndarray, np.ndarray]:
        """Every measured gap between two tokens of a sequence, and how many tokens had it."""
        runs = self.tbt_runs
        parts, flat = [np.asarray(self.tbt_s, dtype=float)], array("d")
        for s, _ in runs:        # a run's steps: an array.array (continuous batching), a list or an ndarray
            if type(s) is array or type(s) is list:
                flat.extend(s) if type(s) is array else flat.fromlist(s)
            else:
                if flat:
                    parts.append(np.frombuffer(flat, dtype=float).copy())
                    flat = array("d")
                parts.append(s)
        if flat:
            parts.append(np.frombuffer(flat, dtype=float).copy())
        vals = np.concatenate(parts).astype(float, copy=False)
        lengths = np.fromiter((len(s) for s, _ in runs), dtype=np.int64, count=len(runs))
        counts = np.fromiter((n for _, n in runs), dtype=float, count=len(runs))
        return vals, np.concatenate([np.ones(len(self.tbt_s)), np.repeat(counts, lengths)])


def kv_block_pool(usable_bytes_per_device: float, resident_bytes_per_device: float, unallocated_fraction: float,
                  block_bytes_per_device: float) -> int:
    """KV blocks that fit on one device: its usable HBM less the share the stack leaves
    unallocated, less what else is resident (weights, activation workspace, ...)."""
    free = usable_bytes_per_device * (1 - unallocated_fraction) - resident_bytes_per_device
    return max(0, int(free // block_bytes_per_device))


def admitted_log(arrivals, kv_blocks: int, pool_blocks: int, block_tokens: int,
                 warmup: int = 0) -> tuple["RunLog", "deque[Seq]"]:
    """A run's log over every arrival, and the requests whose whole sequence fits
    ``pool_blocks`` KV blocks of ``block_tokens``, in arrival order; the others could never
    finish and are counted as rejected (``rejected_kv``)."""
    seqs = [Seq(i, a) for i, a in enumerate(arrivals)]
    log = RunLog(seqs, kv_blocks=kv_blocks, warmup=warmup)
    pending: deque[Seq] = deque()
    for q in seqs:
        if -(-(q.prompt + q.output) // block_tokens) > pool_blocks:
            log.rejected_kv += 1
        else:
            pending.append(q)
    return log, pending
