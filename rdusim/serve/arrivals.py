"""Request streams: Poisson, gamma (bursty) or a trace file, with prompt/output lengths.

A stream is a tuple of :class:`Arrival` in time order. Synthetic streams draw from the
run's numpy Generator; traces are read from the Azure LLM inference CSV
(``TIMESTAMP,ContextTokens,GeneratedTokens``) or a plain CSV
(``arrival_s,prompt_tokens,output_tokens[,expert]``) and replayed at ``scale`` times
their recorded rate. Requests that do not fit the model's context are rejected or
truncated, as the workload says, and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from rdusim.config import limits as L
from rdusim.config.workload_serve import ArrivalProcess, LengthKind, LengthSpec, TooLong
from rdusim.serve.tracefile import Trace, read_trace  # noqa: F401  (the trace files, read here before)


@dataclass(frozen=True)
class Arrival:
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    expert: int = -1          # -1: not given (routed by the router)
    truncated: bool = False
    prefix: int = -1          # shared prompt prefix (system prompt / conversation) id; -1: none
    prefix_tokens: int = 0    # the prefix's length: the first tokens of the prompt


@dataclass(frozen=True)
class Stream:
    arrivals: tuple[Arrival, ...]
    rejected: int             # refused: prompt + output longer than the model's context
    truncated: int            # prompt cut to fit


class StreamTooLong(ValueError):
    """A request stream that does not fit a run (too many arrivals, or too long a span for
    the simulated clock); ``expected`` and ``found`` as an InputError's, the caller names
    the workload key."""

    def __init__(self, expected: str, found: object):
        super().__init__(expected, found)
        self.expected, self.found = expected, found


def lengths(spec: LengthSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    if spec.distribution == LengthKind.FIXED:
        return np.full(n, spec.value, dtype=np.int64)
    if spec.distribution == LengthKind.UNIFORM:
        return rng.integers(spec.min, spec.max + 1, size=n)
    with np.errstate(over="ignore"):           # a draw beyond e^709 is inf, clipped to max below
        x = np.rint(np.exp(rng.normal(np.log(spec.value), spec.sigma, size=n)))
    return np.clip(x, spec.min, spec.max).astype(np.int64)


def interarrivals(process: ArrivalProcess, rate: float, cv: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Times between arrivals with mean 1/rate: exponential, or gamma with shape 1/cv^2."""
    if process == ArrivalProcess.POISSON:
        return rng.exponential(1.0 / rate, size=n)
    shape = 1.0 / (cv * cv)
    return rng.gamma(shape, 1.0 / (rate * shape), size=n)


def synthetic(process: ArrivalProcess, rate: float, cv: float, prompt: LengthSpec, output: LengthSpec,
              count: int, duration_s: float, rng: np.random.Generator) -> list[Arrival]:
    """``count`` arrivals, or (duration_s > 0) all arrivals within ``duration_s``; at most
    MAX_REQUESTS of them, the last within MAX_SIM_TIME_S (else StreamTooLong)."""
    if duration_s > 0:
        times = np.cumsum(interarrivals(process, rate, cv, max(16, int(rate * duration_s * 1.2) + 16), rng))
        while times[-1] < duration_s:
            if len(times) > L.MAX_REQUESTS:
                raise StreamTooLong(f"at most {L.MAX_REQUESTS:g} arrivals within duration_s ({duration_s:g} s)",
                                    f"more than {len(times)} drawn (rate {rate:g} per s, cv {cv:g})")
            more = np.cumsum(interarrivals(process, rate, cv, len(times), rng)) + times[-1]
            times = np.concatenate([times, more])
        times = times[times < duration_s]
    else:
        times = np.cumsum(interarrivals(process, rate, cv, count, rng))
    if len(times) and times[-1] > L.MAX_SIM_TIME_S:
        raise StreamTooLong(f"arrivals within {L.MAX_SIM_TIME_S:g} s of simulated time (the span a run simulates)",
                            f"the last of {len(times)} at {times[-1]:.3g} s (rate {rate:g} per s)")
    p, o = lengths(prompt, len(times), rng), lengths(output, len(times), rng)
    return [Arrival(float(t), int(a), int(b)) for t, a, b in zip(times, p, o)]


def with_prefixes(arrivals: list[Arrival], share: float, tokens: int, prefixes: int,
                  rng: np.random.Generator) -> list[Arrival]:
    """A ``share`` of the requests start with one of ``prefixes`` shared prompts of
    ``tokens`` tokens (uniformly), put before their own prompt; the draws come from their
    own generator, so the arrivals and lengths are those without prefixes."""
    if not share > 0 or tokens <= 0 or not arrivals:
        return arrivals
    has = rng.random(len(arrivals)) < share
    which = rng.integers(0, prefixes, size=len(arrivals))
    return [replace(a, prompt_tokens=a.prompt_tokens + tokens, prefix=int(p), prefix_tokens=tokens) if h else a
            for a, h, p in zip(arrivals, has, which)]


def replay(trace: Trace, scale: float, count: int, duration_s: float) -> list[Arrival]:
    """The trace from its first request, ``scale`` times faster; the first ``count``
    requests (or those within ``duration_s`` of replayed time). A trace that spans no time
    (one row, or every arrival at one instant) runs as given, whatever the scale."""
    t = trace.times_s - trace.times_s[0]
    if trace.span_s > 0:
        t = t / scale
    n = int(np.searchsorted(t, duration_s, side="left")) if duration_s > 0 else min(count, len(t))
    if n and t[n - 1] > L.MAX_SIM_TIME_S:
        raise StreamTooLong(f"a replay speed at which the requests span at most {L.MAX_SIM_TIME_S:g} s of simulated "
                            f"time: at least {t[n - 1] * scale / L.MAX_SIM_TIME_S:.3g}x the recorded rate",
                            f"{scale:.3g}x (the first {n} requests span {t[n - 1]:.3g} s)")
    if trace.prefix is not None:
        return [Arrival(float(t[i]), int(trace.prompt[i]), int(trace.output[i]), int(trace.expert[i]),
                        prefix=int(trace.prefix[i]),
                        prefix_tokens=int(trace.prefix_tokens[i]) if trace.prefix[i] >= 0 else 0)
                for i in range(n)]
    return [Arrival(float(t[i]), int(trace.prompt[i]), int(trace.output[i]), int(trace.expert[i]))
            for i in range(n)]


def fit_context(arrivals: list[Arrival], max_context: int, policy: TooLong) -> Stream:
    kept: list[Arrival] = []
    rejected = truncated = 0
    for a in arrivals:
        if a.prompt_tokens + a.output_tokens <= max_context:
            kept.append(a)
        elif policy == TooLong.REJECT:
            rejected += 1
        else:
            out = min(a.output_tokens, max_context // 2)
            kept.append(Arrival(a.arrival_s, max_context - out, out, a.expert, True, a.prefix,
                                min(a.prefix_tokens, max_context - out)))
            truncated += 1
    return Stream(tuple(kept), rejected, truncated)
