"""The pieces of a serving study that every serving mode shares: the request stream at
any rate (:class:`Streams`), one load point served and summarised (:func:`serve_point`),
the sustainable-rate search (:func:`capacity`), the per-request records and the model a
workload names. :mod:`rdusim.studies.serve` (one model) and :mod:`rdusim.studies.serve_coe`
(CoE experts, adapters) build on them."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rdusim.config.files import MAX_TRACE_BYTES, check_input_file
from rdusim.config.limits import MAX_SIM_TIME_S
from rdusim.config.model import ModelConfig, load_model
from rdusim.config.workload import LoadedWorkload, resolve_path
from rdusim.config.workload_serve import ArrivalProcess, Batching, ServeWorkload
from rdusim.errors import InputError
from rdusim.serve.arrivals import (Stream, StreamTooLong, Trace, fit_context, read_trace, replay, synthetic,
                                   with_prefixes)
from rdusim.serve.guard import ClockOutOfRange, check_times, on_platform
from rdusim.serve.metrics import Slo, summarize, timeseries
from rdusim.serve.platform import ServePlatform
from rdusim.serve_cost import serve_energy     # joules and power of the run (rdusim.energy)


PREFIX_STREAM = 1    # the prefix draws' own generator: [seed, point, rep, PREFIX_STREAM]
QUEUE_GROWTH = 0.25   # a sustainable rate: queueing grows by at most this share of the TTFT SLO over a probe


class Streams:
    """The request stream at any rate: same seed per load point on every platform."""

    def __init__(self, loaded: LoadedWorkload, max_context: int, experts: int = 0):
        self.spec: ServeWorkload = loaded.spec
        self.file = loaded.file
        self.seed = loaded.seed
        self.max_context = max_context
        self.trace: Trace | None = None
        a = self.spec.arrivals
        if a.process == ArrivalProcess.TRACE:
            path = resolve_path(a.trace, loaded.file)
            check_input_file(path, "a trace CSV file", MAX_TRACE_BYTES, file=loaded.file, key="arrivals.trace")
            self.trace = read_trace(path, a.format, experts)
            if self.trace.mean_rate_per_s is None:     # one row, or all at one instant: no rate to scale
                for key, given in (("rates_per_s", list(self.spec.rates_per_s)),
                                   ("capacity.traffic_per_s", self.spec.capacity.traffic_per_s)):
                    if given:
                        raise InputError(loaded.file, key, "none for a trace whose arrivals all fall at one "
                                         f"instant ({self.trace.file}: it has no recorded rate to replay at "
                                         "other rates; it runs as given)", given)

    @property
    def main_rate(self) -> float | None:
        """The main point's offered rate (None: a trace spanning no time, replayed as given)."""
        a = self.spec.arrivals
        if self.trace is None:
            return a.rate_per_s
        m = self.trace.mean_rate_per_s
        return a.time_scale * m if m is not None else None

    def at(self, rate: float | None, count: int, point: int, duration_s: float = 0.0, rep: int = 0) -> Stream:
        """The stream of load point ``point``; replication ``rep`` > 0 draws its own (a trace
        replays the same arrivals in every replication)."""
        spec = self.spec
        total = count + spec.warmup_requests
        try:
            if self.trace is not None:
                m = self.trace.mean_rate_per_s
                arr = replay(self.trace, rate / m if m is not None else 1.0, total, duration_s)
            else:
                rng = np.random.default_rng([self.seed, point] + ([rep] if rep else []))
                arr = synthetic(spec.arrivals.process, rate, spec.arrivals.cv, spec.prompt_tokens,
                                spec.output_tokens, total, duration_s, rng)
                pf = spec.prefix
                if pf.share > 0 and pf.tokens > 0:
                    arr = with_prefixes(arr, pf.share, pf.tokens, pf.prefixes,
                                        np.random.default_rng([self.seed, point, rep, PREFIX_STREAM]))
        except StreamTooLong as exc:
            raise InputError(self.file, self._key(point), exc.expected, exc.found) from None
        if len(arr) <= spec.warmup_requests:
            what = f"the trace's {len(arr)}" if self.trace is not None else f"the {len(arr)} arriving within duration_s"
            raise InputError(self.file, "warmup_requests", f"fewer than {what} requests (the first warmup_requests "
                             "are served but not measured: nothing would be measured)", spec.warmup_requests)
        return fit_context(arr, self.max_context, spec.too_long)

    def _key(self, point: int) -> str:
        """The workload key that sets load point ``point`` (0: main, i + 1: rates_per_s[i])."""
        if point == 0:
            return "arrivals.time_scale" if self.trace is not None else \
                "duration_s" if self.spec.duration_s > 0 else "arrivals.rate_per_s"
        if point <= len(self.spec.rates_per_s):
            return f"rates_per_s[{point - 1}]"
        return "capacity.traffic_per_s"

    @staticmethod
    def rate_metric(rate: float | None) -> dict[str, float]:
        """``rate_per_s`` of a point, absent where a trace has no rate."""
        return {} if rate is None else {"rate_per_s": rate}


def serve_point(plat: ServePlatform, batching: Batching, stream: Stream, spec: ServeWorkload):
    try:
        log = plat.serve(batching, stream.arrivals, spec.warmup_requests)
        check_times(f"{batching.value} batching", log.seqs)
    except ClockOutOfRange as exc:
        raise on_platform(exc, getattr(plat, "name", "?"))
    log.truncated = stream.truncated
    arrivals = len(stream.arrivals) + stream.rejected
    m = summarize(log, spec.warmup_requests, Slo(spec.slo.ttft_s, spec.slo.tpot_s), arrivals)
    m.update(serve_energy(plat, log))
    return log, m


def capacity(plat: ServePlatform, batching: Batching, streams: Streams, spec: ServeWorkload,
             saturated_rate: float) -> float:
    """Highest rate (bisection) that is sustainable: the SLO attainment reaches the target
    and the queue does not grow (a short probe of an overloaded node can still meet the SLO
    on its first requests): the mean queueing time of the probe's last quarter of requests
    exceeds its first quarter's by at most QUEUE_GROWTH x the TTFT SLO."""
    cap = spec.capacity

    # below this rate a probe's requests would span more than the simulated clock resolves;
    # they arrive alone there, so the probe at the floor stands for it
    floor = (cap.requests + spec.warmup_requests) / MAX_SIM_TIME_S

    def ok(rate: float) -> bool:
        m = serve_point(plat, batching, streams.at(max(rate, floor), cap.requests, 10_000), spec)[1]
        return (m.get("slo_attainment", 0.0) >= cap.attainment
                and m.get("queue.growth_s", math.inf) <= QUEUE_GROWTH * spec.slo.ttft_s)

    lo, hi = 0.0, max(saturated_rate, 1e-3) * 1.5
    while ok(hi):
        lo, hi = hi, 2 * hi
        if hi > 64 * max(saturated_rate, 1e-3):
            return lo
    for _ in range(cap.iterations):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def request_records(name: str, mode: str, log, spec: ServeWorkload) -> list[dict[str, Any]]:
    """The measured requests of a served run (``row: request``) and its samples over time
    (``row: timeseries``)."""
    rows = []
    for q in log.seqs[spec.warmup_requests:]:
        done = q.finish_s == q.finish_s
        rows.append({"row": "request", "platform": name, "batching": mode, "id": q.id,
                     "arrival_s": q.arrival_s, "prompt_tokens": q.prompt, "output_tokens": q.output,
                     "expert": q.expert, "queue_s": q.start_s - q.arrival_s if done else None,
                     "ttft_s": q.first_token_s - q.arrival_s if done else None,
                     "tpot_s": (q.finish_s - q.first_token_s) / (q.output - 1) if done and q.output > 1 else None,
                     "e2e_s": q.finish_s - q.arrival_s if done else None, "preemptions": q.preemptions,
                     "switches": q.switches, "completed": done})
    rows += [{"row": "timeseries", "platform": name, "batching": mode, **s} for s in timeseries(log)]
    return rows


def model_named(name: str, file: str, key: str) -> ModelConfig:
    """The model a serve workload names at ``key`` (a name in models/ or a YAML path beside it)."""
    try:
        return load_model(str(resolve_path(name, file)) if name.endswith((".yaml", ".yml")) else name)
    except InputError as exc:
        raise InputError(file, key, exc.expected, name) from None
