"""Perfetto spans per request: queue, prefill (to the first token) and decode, one
thread per request inside a process per platform and batching mode."""

from __future__ import annotations

from typing import Iterable

from rdusim.report.trace import TraceBuilder


def request_spans(runs: Iterable[tuple], per_run: int) -> tuple[dict, ...]:
    """``runs``: (platform, batching, RunLog); the first ``per_run`` requests of each."""
    tb = TraceBuilder()
    for name, mode, log in runs:
        device = f"{name} {mode} requests"
        for q in log.seqs[:per_run]:
            if q.finish_s != q.finish_s:
                continue
            lane = f"request {q.id}"
            args = {"prompt_tokens": q.prompt, "output_tokens": q.output, "preemptions": q.preemptions}
            if q.expert >= 0:
                args["expert"] = q.expert
            for what, a, b in (("queue", q.arrival_s, q.start_s), ("prefill", q.start_s, q.first_token_s),
                               ("decode", q.first_token_s, q.finish_s)):
                if b > a:
                    tb.span(what, a, b - a, device=device, lane=lane, cat=what, **args)
    return tb.events()
