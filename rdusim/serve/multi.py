"""Continuous batching across models: CoE experts, or LoRA adapters over one base, sharing
scheduler iterations.

Requests wait in one queue in arrival order (a CoE first routes the arrivals in a router
step, as :mod:`rdusim.serve.coe`). Every iteration the scheduler admits waiting requests
in order -- no request overtakes an older one -- while the running sequences stay within
``max_sequences``, the admitted prompts within ``max_batched_tokens``, the KV pool holds
each admitted request's whole sequence (its blocks are reserved at admission, so nothing
is ever preempted), and the step's distinct models stay within ``per_step`` (the stack's
``models_per_step`` / ``adapters_per_step``) and the cache's slots. A request whose model
is not resident switches it in (``switch_s``, the CoE switching model's copy time,
charged on the step that admits it) unless the cache's victim is a model the step runs:
then admission stops there, so a step never runs a model that is not resident.

A step either prefills the admitted prompts (the decodes wait, vLLM without chunked
prefill) or decodes every running sequence; its time is the :class:`GroupCosts` of its
models (a CoE: one segment per expert, each reading its own weights; adapters: the base
model's step plus one batched adapter kernel). A step running a model the step before did
not pays ``model_load_s`` for each such model (its programs' arguments) and ``session_s``
once (the host switches the node to the new schedule; the router after experts and back
is such a change too).
Runs of decode steps with nothing to decide are advanced in one go, as
:mod:`rdusim.serve.continuous`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Mapping, Optional, Protocol, Sequence

import numpy as np

from rdusim.config.workload_coe import CachePolicy
from rdusim.engine.coe.cache import ExpertCache
from rdusim.serve.arrivals import Arrival
from rdusim.serve.guard import ClockGuard
from rdusim.serve.server import RunLog, Seq, StepCosts, admitted_log


class GroupCosts(Protocol):
    def prefill_s(self, prompts: Mapping[int, list[int]]) -> float:
        """A packed prefill of the prompts of each model (model -> prompt lengths)."""

    def decode_run_s(self, groups: Mapping[int, tuple[int, float]], steps: int) -> np.ndarray:
        """``steps`` decode steps of (sequences, mean context) per model: each step's time."""


@dataclass(frozen=True)
class MultiSetup:
    costs: GroupCosts
    slots: int                    # models resident in HBM at once
    cache_policy: CachePolicy
    switch_s: float               # one model copied into HBM, nothing else moving
    per_step: int                 # distinct models one step may run
    max_sequences: int
    max_batched_tokens: int
    kv_block_tokens: int
    kv_blocks: int
    request_s: float = 0.0        # the stack's per-request host work, on the step that admits it
    model_load_s: float = 0.0     # each model a step runs that the step before did not (its programs' arguments)
    session_s: float = 0.0        # each step whose models differ from the step before's (the host switches the node's schedule)
    router: Optional[StepCosts] = None   # a CoE's router, run over every arrival (None: requests name their model)
    hottest: tuple[int, ...] = ()
    model_bytes: float = 0.0      # one model's weights over the node (what a switch copies: energy)


@dataclass
class Residency:
    """What the run checked: every step ran resident models only."""

    steps_checked: int = 0
    violations: int = 0


def run_multi(setup: MultiSetup, arrivals: Sequence[Arrival], warmup: int = 0
              ) -> tuple[RunLog, ExpertCache, Residency]:
    B = setup.kv_block_tokens
    log, pending = admitted_log(arrivals, setup.kv_blocks, setup.kv_blocks, B, warmup)
    seqs = log.seqs
    cache = ExpertCache(setup.slots, setup.cache_policy, hottest=setup.hottest, warm=setup.hottest)
    check = Residency()
    waiting: deque[Seq] = deque()
    running: list[Seq] = []
    free = setup.kv_blocks
    now = 0.0
    before: frozenset = frozenset()        # the models of the step before ("router" after a router step)
    per_step = max(1, min(setup.per_step, setup.slots))
    guard = ClockGuard("CoE continuous batching", seqs)

    def advance(t: float) -> None:
        nonlocal now
        log.held(setup.kv_blocks - free, t)
        now += t

    def loads(models: frozenset) -> float:
        nonlocal before
        new = len(models - before)
        before = models
        return setup.model_load_s * new + (setup.session_s if new else 0.0)

    while pending or waiting or running:
        guard.tick(now)
        arrived = []
        while pending and pending[0].arrival_s <= now:
            arrived.append(pending.popleft())
        if arrived and setup.router is not None:     # the router runs over every request that arrived
            for q in arrived:
                q.start_s = now
            advance(loads(frozenset(["router"])) + setup.request_s * len(arrived)
                    + setup.router.packed_prefill_s([(q.prompt, 0) for q in arrived]))
            log.steps += 1
            log.router_steps += 1
        waiting.extend(arrived)
        if not (waiting or running):
            now = pending[0].arrival_s
            continue
        log.sample(now, setup.kv_blocks - free, len(waiting), len(running))
        models = {q.expert for q in running}
        admitted: list[Seq] = []
        switch = 0.0
        budget = setup.max_batched_tokens
        while waiting and len(running) + len(admitted) < setup.max_sequences:
            q = waiting[0]
            need = -(-(q.prompt + q.output) // B)
            if need > free or (admitted and q.prompt > budget):
                break
            e = q.expert
            if e not in models:
                if len(models) >= per_step:
                    break
                if e not in cache:
                    victim = cache.victim()
                    if victim is not None and victim in models:
                        break
            if not cache.hit(e):
                switch += setup.switch_s
                q.switches += 1
            models.add(e)
            waiting.popleft()
            free -= need
            q.blocks = need
            budget -= q.prompt
            if q.start_s != q.start_s:
                q.start_s = now
            admitted.append(q)
        step_models = frozenset(models)
        check.steps_checked += 1
        check.violations += sum(1 for e in step_models if e not in cache)
        if admitted:
            groups: dict[int, list[int]] = {}
            for q in admitted:
                groups.setdefault(q.expert, []).append(q.prompt)
            advance(switch + loads(frozenset(groups)) + setup.request_s * len(admitted)
                    + setup.costs.prefill_s(groups))
            log.steps += 1
            log.expert_steps += len(groups)
            for q in admitted:
                q.first_token_s = q.last_token_s = now
                q.generated = 1
            running.extend(admitted)
            free += _finish(running, now)
            continue
        if not running:       # the head waits for blocks or a slot no one holds: cannot happen
            raise RuntimeError("CoE continuous batching: waiting requests that can never be admitted")
        k = min(q.output - q.generated for q in running)
        acc: dict[int, list[float]] = {}
        for q in running:
            a = acc.setdefault(q.expert, [0, 0.0])
            a[0] += 1
            a[1] += q.prompt + q.generated
        groups_d = {e: (int(n), c / n) for e, (n, c) in acc.items()}
        start = now + loads(frozenset(groups_d))
        times = setup.costs.decode_run_s(groups_d, k)
        ends = start + np.cumsum(times)
        if pending and len(running) < setup.max_sequences:   # stop at the step the next arrival lands in
            k = min(k, int(np.searchsorted(ends, pending[0].arrival_s, side="left")) + 1)
        end = float(ends[k - 1])
        advance(end - now)
        log.steps += k
        log.expert_steps += k * len(groups_d)
        log.tokens(running, float(ends[0]), end, times[1:k])
        for q in running:
            q.generated += k
        free += _finish(running, now)
    return log, cache, check


def _finish(running: list[Seq], now: float) -> int:
    """Sequences done by ``now`` leave (their blocks freed): the blocks they held."""
    freed = 0
    for q in running:
        if q.generated >= q.output:
            q.generated = q.output
            q.finish_s = now
            freed += q.blocks
            q.blocks = 0
    running[:] = [q for q in running if q.finish_s != q.finish_s]
    return freed
