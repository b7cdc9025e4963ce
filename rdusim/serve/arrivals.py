"""Request streams: Poisson, gamma (bursty) or a trace file, with prompt/output lengths.

A stream is a tuple of :class:`Arrival` in time order. Synthetic streams draw from the
run's numpy Generator; traces are read from the Azure LLM inference CSV
(``TIMESTAMP,ContextTokens,GeneratedTokens``) or a plain CSV
(``arrival_s,prompt_tokens,output_tokens[,expert]``) and replayed at ``scale`` times
their recorded rate. Requests that do not fit the model's context are rejected or
truncated, as the workload says, and counted.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rdusim.config.workload_serve import ArrivalProcess, LengthKind, LengthSpec, TooLong, TraceFormat
from rdusim.errors import InputError

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
PLAIN_COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens")


@dataclass(frozen=True)
class Arrival:
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    expert: int = -1          # -1: not given (routed by the router)
    truncated: bool = False


@dataclass(frozen=True)
class Trace:
    """A trace file as read: times from its first request, lengths, optional experts."""

    file: str
    times_s: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    expert: np.ndarray        # -1 where the file has no expert column

    @property
    def mean_rate_per_s(self) -> float:
        span = float(self.times_s[-1] - self.times_s[0])
        return (len(self.times_s) - 1) / span if span > 0 else float("inf")


@dataclass(frozen=True)
class Stream:
    arrivals: tuple[Arrival, ...]
    rejected: int             # refused: prompt + output longer than the model's context
    truncated: int            # prompt cut to fit


def lengths(spec: LengthSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    if spec.distribution == LengthKind.FIXED:
        return np.full(n, spec.value, dtype=np.int64)
    if spec.distribution == LengthKind.UNIFORM:
        return rng.integers(spec.min, spec.max + 1, size=n)
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
    """``count`` arrivals, or (duration_s > 0) all arrivals within ``duration_s``."""
    if duration_s > 0:
        times = np.cumsum(interarrivals(process, rate, cv, max(16, int(rate * duration_s * 1.2) + 16), rng))
        while times[-1] < duration_s:
            more = np.cumsum(interarrivals(process, rate, cv, len(times), rng)) + times[-1]
            times = np.concatenate([times, more])
        times = times[times < duration_s]
    else:
        times = np.cumsum(interarrivals(process, rate, cv, count, rng))
    p, o = lengths(prompt, len(times), rng), lengths(output, len(times), rng)
    return [Arrival(float(t), int(a), int(b)) for t, a, b in zip(times, p, o)]


def replay(trace: Trace, scale: float, count: int, duration_s: float) -> list[Arrival]:
    """The trace from its first request, ``scale`` times faster; the first ``count``
    requests (or those within ``duration_s`` of replayed time)."""
    t = (trace.times_s - trace.times_s[0]) / scale
    n = int(np.searchsorted(t, duration_s, side="left")) if duration_s > 0 else min(count, len(t))
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
            kept.append(Arrival(a.arrival_s, max_context - out, out, a.expert, True))
            truncated += 1
    return Stream(tuple(kept), rejected, truncated)


# ---- trace files ----

def read_trace(path: str | Path, fmt: TraceFormat, experts: int = 0) -> Trace:
    """Read a trace CSV; every bad row is an InputError naming file, row and field.
    ``experts`` > 0: an expert column must name one of that many experts."""
    p = Path(path)
    file = str(p)
    if not p.is_file():
        raise InputError(file, "", "a trace CSV file", "no such file")
    with p.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise InputError(file, "row 1", "a header row", "an empty file")
    header = [h.strip() for h in rows[0]]
    want = AZURE_COLUMNS if fmt == TraceFormat.AZURE else PLAIN_COLUMNS
    if tuple(header[:3]) != want or len(header) > (3 if fmt == TraceFormat.AZURE else 4) or \
            (len(header) == 4 and header[3] != "expert"):
        extra = "" if fmt == TraceFormat.AZURE else "[,expert]"
        raise InputError(file, "row 1", f"the header {','.join(want)}{extra}", ",".join(header))
    body = rows[1:]
    if not body:
        raise InputError(file, "row 2", "at least one request after the header", "no rows")
    n = len(body)
    times, prompt, output = np.empty(n), np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    expert = np.full(n, -1, dtype=np.int64)
    for i, row in enumerate(body):
        where = f"row {i + 2}"
        if len(row) != len(header):
            raise InputError(file, where, f"{len(header)} fields ({','.join(header)})", ",".join(row))
        times[i] = _azure_time(row[0], file, where) if fmt == TraceFormat.AZURE else \
            _number(row[0], file, f"{where}.{header[0]}", float, 0)
        prompt[i] = _number(row[1], file, f"{where}.{header[1]}", int, 1)
        output[i] = _number(row[2], file, f"{where}.{header[2]}", int, 1)
        if len(header) == 4:
            e = _number(row[3], file, f"{where}.expert", int, 0)
            if experts and e >= experts:
                raise InputError(file, f"{where}.expert", f"an expert id below the CoE's expert count ({experts})", e)
            expert[i] = e
        if i and times[i] < times[i - 1]:
            raise InputError(file, f"{where}.{header[0]}", f"a time >= the previous row's ({times[i - 1]})", row[0])
    return Trace(file, times, prompt, output, expert)


def _number(text: str, file: str, key: str, kind: type, least: float):
    try:
        v = float(text) if kind is float else int(text.strip())
    except ValueError:
        raise InputError(file, key, f"{'a number' if kind is float else 'an integer'}", text) from None
    if not np.isfinite(v) or v < least:
        raise InputError(file, key, f"a finite number >= {least}", text)
    return v


def _azure_time(text: str, file: str, key: str) -> float:
    """``YYYY-MM-DD HH:MM:SS.fffffff`` -> seconds since the epoch (7 fractional digits kept)."""
    try:
        day, clock = text.strip().split(" ")
        h, m, s = clock.split(":")
        base = dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc).timestamp()
        return base + int(h) * 3600 + int(m) * 60 + float(s)
    except ValueError:
        raise InputError(file, f"{key}.TIMESTAMP", "a time YYYY-MM-DD HH:MM:SS.fffffff", text) from None
