"""Continuous batching in the vLLM style, as a discrete-event simulation.

Every step the scheduler (1) swaps preempted sequences back in when KV blocks allow,
(2) admits waiting requests in arrival order while the running sequences stay within
``max_sequences``, the step's prompt tokens within ``max_batched_tokens`` and a free KV
block remains for every admitted token (vLLM's watermark kept free), and (3) runs
the step: without chunked prefill a step either prefills the admitted prompts (decodes
wait) or decodes every running sequence; with chunked prefill every step decodes all
running sequences and fills the rest of the token budget with prompt chunks. When a
decode step needs more KV blocks than are free, the most recently admitted sequence is
preempted: recompute (its blocks freed, its prompt and generated tokens prefilled again
later) or swap (its blocks copied to host DRAM / DDR and back, the copies costing
time on the step).

Runs of decode-only steps with nothing to decide in between (no arrival that could be
admitted, no completion, enough KV blocks) are advanced in one go: their step times are
the step model's vectorised decode curve, so a run costs per event, not per token.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from typing import Sequence

import numpy as np

from rdusim.config.stack import PreemptionMode
from rdusim.serve.arrivals import Arrival
from rdusim.serve.guard import ClockGuard
from rdusim.serve.loop_support import collector_paused, run_times as _run_times
from rdusim.serve.prefix_cache import PrefixCache, chain
from rdusim.serve.server import RunLog, Seq, ServerSetup


def run_continuous(setup: ServerSetup, arrivals: Sequence[Arrival], warmup: int = 0) -> RunLog:
    with collector_paused():
        sim = _Continuous(setup, arrivals)
        sim.log.warmup = warmup
        sim.run()
    return sim.log


class _Continuous:
    def __init__(self, setup: ServerSetup, arrivals: Sequence[Arrival]):
        self.s = setup
        self.sc = setup.scheduler
        self.B = setup.block_tokens
        self.log = RunLog([], kv_blocks=setup.kv_blocks)
        self.pending: deque[Seq] = deque()
        for i, a in enumerate(arrivals):
            self.add(Seq(i, a))
        self.waiting: deque[Seq] = deque()
        self.swapped: deque[Seq] = deque()
        self.running: list[Seq] = []
        self.free = setup.kv_blocks     # free blocks, and cached blocks no request reads (evictable)
        self.now = 0.0
        self.pc = self.log.prefix_cache = PrefixCache() if setup.scheduler.prefix_caching else None
        self._run_times = _run_times(setup.costs)
        self._chains: dict[tuple[int, int], list[int]] = {}

    def blocks(self, tokens: int) -> int:
        return -(-tokens // self.B)

    def take(self, blocks: int) -> None:
        """``blocks`` blocks allocated: beyond the free ones, evictable cached ones are evicted."""
        self.free -= blocks
        if self.pc is not None:
            self.pc.reclaim(self.free)

    def release(self, q: Seq) -> int:
        """Blocks ``q`` gives back: its own, and the cached ones it was the last to read."""
        if not q.shared:
            return q.blocks
        back = q.blocks - len(q.shared) + self.pc.release(q.shared)
        q.shared = []
        return back

    def prefix_hashes(self, q: Seq) -> list[int]:
        """The chained hashes of ``q``'s full prefix blocks (at least one prompt token is
        always computed, as vLLM does)."""
        if self.pc is None or q.prefix < 0:
            return []
        key = (q.prefix, q.prefix_tokens)
        full = self._chains.get(key)
        if full is None:
            full = self._chains[key] = chain(q.prefix, q.prefix_tokens // self.B)
        return full[:min(q.prefix_tokens, q.target - 1) // self.B]

    def register(self, q: Seq) -> None:
        """``q``'s prefill is done: its prefix blocks not cached yet become shared."""
        for h in self.prefix_hashes(q)[len(q.shared):]:
            if self.pc.register(h):
                q.shared.append(h)

    def advance(self, t: float) -> None:
        """The clock moves on ``t`` seconds with the KV blocks held now."""
        self.log.held(self.s.kv_blocks - self.free, t)
        self.now += t

    def add(self, q: Seq) -> None:
        """A request for this server, after every one added before it in time (a fleet's
        router adds them as it routes)."""
        self.log.seqs.append(q)
        # a request whose whole sequence cannot fit the pool could never finish
        if self.blocks(q.prompt + q.output) > self.s.kv_blocks - self.s.watermark_blocks:
            self.log.rejected_kv += 1
        else:
            self.pending.append(q)

    def busy(self) -> bool:
        return bool(self.pending or self.waiting or self.swapped or self.running)

    def run(self) -> None:
        guard = ClockGuard("continuous batching", self.log.seqs)
        while self.busy():
            guard.tick(self.now)
            self.step()

    def step(self) -> None:
        """One pass of the loop: the arrivals due join the queue, then one event (a step,
        a run of decode steps, or the clock's jump to the next arrival)."""
        while self.pending and self.pending[0].arrival_s <= self.now:
            self.waiting.append(self.pending.popleft())
        if not (self.waiting or self.swapped or self.running):
            self.now = self.pending[0].arrival_s
            return
        self.log.sample(self.now, self.s.kv_blocks - self.free, len(self.waiting) + len(self.swapped),
                        len(self.running))
        extra = self.swap_in()
        if self.sc.chunked_prefill:
            self.chunked_step(extra)
        elif not self.prefill_step(extra):
            self.decode_run(extra)

    # ---- admission ----
    def swap_in(self) -> float:
        t = 0.0
        # back in only with a block to spare for every running sequence's next token, so
        # the step after a swap-in can run (no swap-in / swap-out ping-pong)
        while (self.swapped and len(self.running) < self.sc.max_sequences
               and self.free - self.swapped[0].blocks - len(self.running) - 1 >= self.s.watermark_blocks):
            q = self.swapped.popleft()
            q.waited_s += self.now - q.queued_s
            q.queued_s = math.nan
            self.take(q.blocks)
            t += self.s.swap_s(q.blocks)
            self.log.swap_s += self.s.swap_s(q.blocks)
            q.swapped = False
            self.running.append(q)
        return t

    def admit(self, budget: int, whole: bool) -> list[Seq]:
        """Waiting requests taken in order while limits allow; blocks for the whole
        prompt (plus its first output token) reserved. ``whole``: a prompt must fit the
        remaining token budget (the first one always may)."""
        out: list[Seq] = []
        while self.waiting and len(self.running) + len(out) < self.sc.max_sequences and budget > 0:
            q = self.waiting[0]
            if whole and out and q.target - q.kv_in > budget:
                break
            need = self.blocks(q.target + 1)
            hashes = self.prefix_hashes(q)
            hit = self.pc.match(hashes) if hashes else 0
            revive = sum(1 for h in hashes[:hit] if h in self.pc.evictable) if hit else 0
            if self.free - (need - hit) - revive < self.s.watermark_blocks:
                break
            self.waiting.popleft()
            if hashes:
                self.free -= self.pc.acquire(hashes[:hit])
                q.shared = hashes[:hit]
                self.pc.queried += len(hashes)
                self.pc.hits += hit
                self.pc.saved_tokens += hit * self.B
            self.take(need - hit)
            q.blocks = need
            q.prefilled = q.kv_in if q.kv_in else hit * self.B   # KV computed elsewhere, or a prefix hit
            if q.start_s != q.start_s:
                q.start_s = self.now
            elif q.queued_s == q.queued_s:          # back after a preemption
                q.waited_s += self.now - q.queued_s
                q.queued_s = math.nan
            budget -= q.target - q.prefilled
            out.append(q)
        return out

    def prefill_step(self, extra: float) -> bool:
        admitted = self.admit(self.sc.max_batched_tokens, whole=True)
        if not admitted:
            return False
        # the stack's set-up of every request admitted, then the packed step (of the
        # prompts whose KV is not in already)
        fresh = [q for q in admitted if q.prefilled < q.target]
        pieces = [(q.target - q.prefilled, q.prefilled) for q in fresh]
        t = extra + (self.s.costs.packed_prefill_s(pieces) if pieces else 0.0) + self.s.request_s * len(admitted)
        self.advance(t)
        self.log.steps += 1 if pieces else 0
        for q in admitted:
            q.prefilled = q.target
            self.running.append(q)
            if q.prefix >= 0 and self.pc is not None:
                self.register(q)
        self.log.tokens(fresh, self.now)
        self.produced(fresh)
        return True

    # ---- steps ----
    def produced(self, seqs: list[Seq], tokens: int = 1) -> None:
        """``seqs`` produced ``tokens`` tokens each by now; finished ones leave."""
        done = False
        for q in seqs:
            q.generated += tokens
            if q.first_token_s != q.first_token_s:
                q.first_token_s = self.now
            if q.generated >= q.output:
                q.finish_s = self.now
                self.free += self.release(q)
                q.blocks = 0
                done = True
        if done:
            self.running[:] = [q for q in self.running if q.finish_s != q.finish_s]

    def grow(self, seqs: list[Seq]) -> None:
        for q in seqs:
            need = self.blocks(q.context + 1) - q.blocks
            if need > 0:
                self.take(need)
                q.blocks += need

    def preempt(self) -> float:
        victim = self.running.pop()
        self.log.preemptions += 1
        victim.preemptions += 1
        blocks = victim.blocks
        self.free += self.release(victim)
        victim.blocks = 0
        victim.queued_s = self.now
        if self.sc.preemption == PreemptionMode.SWAP and victim.prefilled >= victim.target:
            victim.swapped = True
            victim.blocks = blocks
            self.swapped.append(victim)
            t = self.s.swap_s(blocks)
            self.log.swap_s += t
            return t
        victim.target = victim.context          # recompute: prompt + generated prefilled again
        victim.prefilled = victim.kv_in = 0
        self.waiting.appendleft(victim)
        return 0.0

    def decode_run(self, extra: float) -> None:
        """Decode steps of every running sequence until something is to be decided."""
        run = self.running
        if not run:
            if not self.pending:
                raise RuntimeError("continuous batching: waiting requests that can never be admitted")
            self.advance(max(extra, self.pending[0].arrival_s - self.now))
            return
        n = len(run)
        k = None
        ctx_sum = 0
        for q in run:       # one pass: the fewest tokens any still owes, and the contexts' total
            g = q.generated
            left = q.output - g
            if k is None or left < k:
                k = left
            ctx_sum += q.prompt + g
        if n * -(-k // self.B) > self.free:        # maybe not enough blocks for k more tokens each
            ctx = np.fromiter((q.context for q in run), dtype=np.int64, count=n)
            k = self._steps_that_fit(ctx, k)
            if k == 0:
                self.advance(extra + self.preempt())
                return
        mean_ctx = ctx_sum / n
        start = self.now + extra
        until = math.inf
        if self.pending and n < self.sc.max_sequences:
            # steps only lengthen as contexts grow: the first step's time bounds how many
            # steps can end before the next arrival; the run stops at the first step that
            # ends at or after it
            until = self.pending[0].arrival_s
            gap = until - start
            first = self.s.costs.decode_s(n, mean_ctx)
            k = max(1, min(k, int(gap / first) + 2)) if gap > 0 else 1
        times, ends = self._run_times(n, mean_ctx, k, start, until)
        k = len(ends)
        end = ends[-1]
        log = self.log
        log.held(self.s.kv_blocks - self.free, end - self.now)
        self.now = end
        log.steps += k
        B = self.B
        grown = 0
        warm = log.warmup
        gaps = log.tbt_s
        first_end = ends[0]
        measured = 0
        done: list[Seq] = []
        for q in run:   # k tokens each: the blocks of the k new tokens, the gap to its last token
            g = q.generated
            need = -(-(q.prompt + g + k) // B) - q.blocks
            grown += need
            q.blocks += need
            if q.id >= warm:
                measured += 1
                last = q.last_token_s
                if last == last:
                    gaps.append(first_end - last)
            q.last_token_s = end
            g += k
            q.generated = g
            if q.first_token_s != q.first_token_s:
                q.first_token_s = end
            if g >= q.output:
                q.finish_s = end
                done.append(q)
        self.take(grown)
        log.held(grown / 2, end - start)      # the new blocks fill in over the run
        if measured and k > 1:     # an array, not a list: 10^5 runs of lists would keep the collector busy
            log.tbt_runs.append((array("d", times[1:k]), measured))
        if done:
            for q in done:
                self.free += self.release(q)
                q.blocks = 0
            self.running[:] = [q for q in run if q.finish_s != q.finish_s]

    def _steps_that_fit(self, ctx: np.ndarray, k: int) -> int:
        """Largest j <= k such that j more tokens per sequence fit in the free blocks."""
        held = -(-ctx // self.B)

        def need(j: int) -> int:
            return int((-(-(ctx + j) // self.B) - held).sum())

        if need(k) <= self.free:
            return k
        lo, hi = 0, k          # need(lo) fits, need(hi) does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if need(mid) <= self.free:
                lo = mid
            else:
                hi = mid
        return lo

    def chunked_step(self, extra: float) -> None:
        decodes = [q for q in self.running if q.prefilled >= q.target]
        budget = self.sc.max_batched_tokens - len(decodes)
        chunks: list[tuple[Seq, int]] = []
        for q in self.running:
            if q.prefilled < q.target and budget > 0:
                n = min(q.target - q.prefilled, budget)
                chunks.append((q, n))
                budget -= n
        admitted = self.admit(budget, whole=False)
        for q in admitted:
            n = min(q.target - q.prefilled, budget)
            if n > 0:
                chunks.append((q, n))
                budget -= n
            self.running.append(q)
        if not chunks:
            self.decode_run(extra)
            return
        need = sum(max(0, self.blocks(q.context + 1) - q.blocks) for q in decodes)
        while need > self.free and decodes:   # the decodes' new blocks: preempt until they fit
            extra += self.preempt()
            decodes = [q for q in self.running if q.prefilled >= q.target]
            chunks = [(q, n) for q, n in chunks if q in self.running]
            need = sum(max(0, self.blocks(q.context + 1) - q.blocks) for q in decodes)
        mean_ctx = float(np.mean([q.context for q in decodes])) if decodes else 0.0
        t = extra + self.s.costs.mixed_s([(n, q.prefilled) for q, n in chunks], len(decodes), mean_ctx)
        self.advance(t + self.s.request_s * len(admitted))
        self.log.steps += 1
        self.grow(decodes)
        finished_prefill = []
        for q, n in chunks:
            q.prefilled += n
            if q.prefilled >= q.target:
                finished_prefill.append(q)
                if q.prefix >= 0 and self.pc is not None:
                    self.register(q)
        self.log.tokens(decodes + finished_prefill, self.now)
        self.produced(decodes + finished_prefill)
