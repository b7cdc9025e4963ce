"""Static batching: a batch is formed when the machine is free and runs to its last token.

When the machine is idle and requests wait, up to ``static_batch_sequences`` of them
(in arrival order, as many as the KV pool holds at their full length) form a batch.
The batch is padded to its longest prompt: one prefill of that many tokens per
sequence, then decode steps of the whole batch (finished sequences keep their slot)
until its longest output is done. A request's tokens stream as they are made, so its
first token comes at the end of the prefill and its last at its own last step.
"""

from __future__ import annotations

from collections import deque
from typing import Sequence

import numpy as np

from rdusim.serve.arrivals import Arrival
from rdusim.serve.guard import ClockGuard
from rdusim.serve.server import RunLog, Seq, ServerSetup, admitted_log


def run_static(setup: ServerSetup, arrivals: Sequence[Arrival], warmup: int = 0) -> RunLog:
    B = setup.block_tokens
    pool = setup.kv_blocks - setup.watermark_blocks
    log, pending = admitted_log(arrivals, setup.kv_blocks, pool, B, warmup)
    seqs = log.seqs
    waiting: deque[Seq] = deque()
    now = 0.0
    limit = setup.scheduler.static_batch_sequences
    guard = ClockGuard("static batching", seqs)
    while pending or waiting:
        guard.tick(now)
        while pending and pending[0].arrival_s <= now:
            waiting.append(pending.popleft())
        if not waiting:
            now = pending[0].arrival_s
            continue
        batch: list[Seq] = []
        while waiting and len(batch) < limit:
            trial = batch + [waiting[0]]
            pad_p = max(q.prompt for q in trial)
            pad_o = max(q.output for q in trial)
            if len(trial) * -(-(pad_p + pad_o) // B) > pool:   # padded batch at full length
                break
            batch.append(waiting.popleft())
        n = len(batch)
        pad_p = max(q.prompt for q in batch)
        pad_o = max(q.output for q in batch)
        used = n * -(-(pad_p + pad_o) // B)
        log.sample(now, used, len(waiting), n)
        for q in batch:
            q.start_s = now
        start = now
        now += setup.request_s * n + setup.costs.packed_prefill_s([(pad_p, 0)] * n)
        log.steps += 1
        for q in batch:
            q.first_token_s = now
            q.generated = 1
            if q.output == 1:
                q.finish_s = now
        if pad_o > 1:
            times = setup.costs.decode_run_s(n, float(pad_p), pad_o - 1)
            ends = now + np.cumsum(times)
            for q in batch:
                if q.output > 1:
                    q.finish_s = float(ends[q.output - 2])
                    q.generated = q.output
                    if q.id >= warmup:      # its tokens: one at the end of each of its steps
                        log.tbt_runs.append((times[:q.output - 1], 1))
            now = float(ends[-1])
            log.steps += pad_o - 1
        log.held(used, now - start)     # the batch holds its blocks at full length until it ends
    return log
