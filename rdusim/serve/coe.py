"""A Composition of Experts under load: router on every request, one queue per expert.

Requests that arrived while the machine was busy are routed together in one router
step (a packed prefill of their prompts on the router model, which yields the one
decision token). Each then waits in its expert's queue. When the machine is free it
picks an expert by the policy -- FIFO: the expert of the oldest waiting request, with
those of its requests that arrived before any other expert's oldest (no request
overtakes an older one); GROUPED: the expert with the most waiting requests and all of
them, unless the oldest request has waited ``max_wait_s`` (then its expert) -- switches it into HBM if it is not resident
(rdusim.engine.coe.cache.ExpertCache decides hits and evictions; the copy takes
``switch_s``, the CoE switching model's flow-network copy time), and serves up to
``max_sequences`` of its queued requests as one batch: a packed prefill, then decode
steps of the sequences still running until the last is done. Each change of the model
the node runs (router <-> an expert) pays the stack's ``per_model_load_s`` (on the
SN40L, Program and Argument Load of the model's kernels). With prefetch, the
expert the policy would pick next is copied while the batch runs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rdusim.config.workload_coe import CachePolicy
from rdusim.config.workload_serve import CoePolicy
from rdusim.engine.coe.cache import ExpertCache
from rdusim.serve.arrivals import Arrival
from rdusim.serve.guard import ClockGuard
from rdusim.serve.server import RunLog, Seq, StepCosts, admitted_log


@dataclass(frozen=True)
class CoeSetup:
    router: StepCosts
    expert: StepCosts
    experts: int
    slots: int                    # expert slots in HBM
    cache_policy: CachePolicy
    prefetch: bool
    switch_s: float               # one expert copied into HBM, nothing else moving
    policy: CoePolicy
    max_wait_s: float
    max_sequences: int
    kv_block_tokens: int
    kv_blocks: int
    request_s: float = 0.0        # the stack's per-request host work, once per step that starts requests
    model_load_s: float = 0.0     # the stack's per-model-load work, each time the node changes model
    hottest: tuple[int, ...] = ()
    model_bytes: float = 0.0      # one expert's weights over the node (what a switch copies: energy)


def run_coe(setup: CoeSetup, arrivals: Sequence[Arrival], warmup: int = 0) -> tuple[RunLog, ExpertCache]:
    B = setup.kv_block_tokens
    log, pending = admitted_log(arrivals, setup.kv_blocks, setup.kv_blocks, B, warmup)
    seqs = log.seqs
    queues: dict[int, deque[Seq]] = {}
    cache = ExpertCache(setup.slots, setup.cache_policy, hottest=setup.hottest, warm=setup.hottest)
    ready_at: dict[int, float] = {}        # prefetched expert -> time its copy lands
    now = 0.0
    waiting = 0
    current = None                         # the model loaded: "router" or an expert id

    def load(model) -> float:
        nonlocal current
        if model == current:
            return 0.0
        current = model
        return setup.model_load_s

    def pick() -> int | None:
        heads = [(qu[0].arrival_s, e) for e, qu in queues.items() if qu]
        if not heads:
            return None
        oldest_t, oldest_e = min(heads)
        if setup.policy == CoePolicy.FIFO or now - oldest_t >= setup.max_wait_s:
            return oldest_e
        return max(queues, key=lambda e: (len(queues[e]), -queues[e][0].arrival_s if queues[e] else 0))

    guard = ClockGuard("CoE serving", seqs)
    while pending or waiting:
        guard.tick(now)
        routed = []
        while pending and pending[0].arrival_s <= now:
            routed.append(pending.popleft())
        if routed:            # the router runs over every request that arrived
            for q in routed:
                q.start_s = now
            now += (load("router") + setup.request_s * len(routed)
                    + setup.router.packed_prefill_s([(q.prompt, 0) for q in routed]))
            log.steps += 1
            log.router_steps += 1
            for q in routed:
                queues.setdefault(q.expert, deque()).append(q)
            waiting += len(routed)
            continue
        if not waiting:
            now = pending[0].arrival_s
            continue
        e = pick()
        take = min(setup.max_sequences, len(queues[e]))
        if setup.policy == CoePolicy.FIFO:      # no request overtakes an older one of another expert
            other = min((qu[0].arrival_s for x, qu in queues.items() if qu and x != e), default=float("inf"))
            take = next((i for i, q in enumerate(queues[e]) if i >= take or q.arrival_s > other), take)
        batch = [queues[e].popleft() for _ in range(take)]
        waiting -= len(batch)
        used = sum(-(-(q.prompt + q.output) // B) for q in batch)
        log.sample(now, used, waiting, len(batch))
        landed = ready_at.pop(e, None)
        if landed is not None and e in cache:   # prefetched: wait for the copy to land
            now = max(now, landed)
        elif not cache.access(e).hit:
            now += setup.switch_s
            for q in batch:
                q.switches += 1
        t0 = now
        if setup.prefetch and setup.slots >= 2:
            nxt = pick()
            if nxt is not None and nxt != e and nxt not in cache:
                cache.access(nxt)
                ready_at[nxt] = t0 + setup.switch_s
        start = now
        now += load(e) + setup.request_s * len(batch) + setup.expert.packed_prefill_s([(q.prompt, 0) for q in batch])
        log.steps += 1
        log.expert_steps += 1
        for q in batch:
            q.first_token_s = now
            q.generated = 1
        outs = sorted(q.output for q in batch)
        running = len(batch)
        ctx = float(np.mean([q.prompt + 1 for q in batch]))
        done = 1
        for out in sorted(set(outs)):           # decode until the next sequence finishes
            if out > done:
                times = setup.expert.decode_run_s(running, ctx, out - done)
                now += float(times.sum())
                log.steps += out - done
                log.expert_steps += out - done
                measured = sum(1 for q in batch if q.output > done and q.id >= warmup)
                if measured:
                    log.tbt_runs.append((times, measured))
                ctx += out - done
                done = out
            for q in batch:
                if q.output == out:
                    q.finish_s = now
                    q.generated = q.output
            running -= outs.count(out)
        log.held(used, now - start)     # the batch's blocks at full length while it runs
    return log, cache
