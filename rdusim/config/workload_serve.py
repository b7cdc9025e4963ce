"""Workload kind ``serve``: requests arriving over time, served by a stack's scheduler.

Arrivals are Poisson, gamma (bursty, with a coefficient of variation) or a trace file
(the Azure LLM inference CSV or a plain ``arrival_s,prompt_tokens,output_tokens[,expert]``
CSV). The load sweep ``rates_per_s`` gives the throughput-latency curves; for a trace
a rate is a replay at ``rate / recorded mean rate`` times the recorded speed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Mapping, Optional

from rdusim.config.execution import ExecutionConfig
from rdusim.config.stack import PreemptionMode
from rdusim.config.strict import positive
from rdusim.config import limits as L
from rdusim.config.limits import upto
from rdusim.config.workload import PlatformSpec
from rdusim.config.workload_coe import CacheSpec, RoutingSpec
from rdusim.graph.peft import LORA_MODULES


class ArrivalProcess(enum.Enum):
    POISSON = "poisson"
    GAMMA = "gamma"        # gamma inter-arrival times with coefficient of variation ``cv``
    TRACE = "trace"


class TraceFormat(enum.Enum):
    AZURE = "azure"        # TIMESTAMP,ContextTokens,GeneratedTokens (Azure LLM inference trace 2023)
    PLAIN = "plain"        # arrival_s,prompt_tokens,output_tokens[,expert]


class LengthKind(enum.Enum):
    FIXED = "fixed"
    UNIFORM = "uniform"     # integers in [min, max]
    LOGNORMAL = "lognormal"  # median ``value``, log-space sigma ``sigma``, clipped to [min, max]


class TooLong(enum.Enum):
    REJECT = "reject"       # a prompt longer than the model's context is refused (counted)
    TRUNCATE = "truncate"   # its prompt is cut to fit (counted)


class Batching(enum.Enum):
    CONTINUOUS = "continuous"   # vLLM-style: join and leave the running batch every step
    STATIC = "static"           # a batch runs to its last token before the next one starts


class CoeBatching(enum.Enum):
    RUN_TO_COMPLETION = "run_to_completion"   # one expert's batch runs to its last token (rdusim.serve.coe)
    CONTINUOUS = "continuous"   # requests of resident experts join and leave one running batch (rdusim.serve.multi)


class CoePolicy(enum.Enum):
    FIFO = "fifo"           # serve the expert of the oldest waiting request
    GROUPED = "grouped"     # serve the expert with most waiting requests, unless one waited max_wait_s


@dataclass(frozen=True)
class LengthSpec:
    distribution: LengthKind = LengthKind.FIXED
    value: int = field(default=128, metadata=upto(L.MAX_TOKENS))   # fixed value / lognormal median
    min: int = field(default=1, metadata=upto(L.MAX_TOKENS))
    max: int = field(default=4096, metadata=upto(L.MAX_TOKENS))
    sigma: float = field(default=0.5, metadata=upto(L.MAX_LOG_SIGMA, ge=0))

    def __post_init__(self) -> None:
        if self.min > self.max:
            raise ValueError("min", f"at most max ({self.max})", self.min)


@dataclass(frozen=True)
class ArrivalSpec:
    process: ArrivalProcess = ArrivalProcess.POISSON
    rate_per_s: float = field(default=1.0, metadata={"gt": 0})   # the run's main load point
    cv: float = field(default=1.0, metadata=upto(L.MAX_CV))        # gamma: std / mean of inter-arrival times
    trace: Optional[str] = None
    format: TraceFormat = TraceFormat.AZURE
    time_scale: float = field(default=1.0, metadata={"gt": 0})    # trace replayed at k x its recorded rate

    def __post_init__(self) -> None:
        if self.process == ArrivalProcess.TRACE and not self.trace:
            raise ValueError("trace", "a trace file path when process is trace", self.trace)


@dataclass(frozen=True)
class PrefixSpec:
    """Synthetic shared prompt prefixes: a ``share`` of the requests start with one of
    ``prefixes`` system prompts of ``tokens`` tokens (drawn uniformly), before their own
    prompt_tokens (a trace names prefixes in its own columns)."""

    share: float = field(default=0.0, metadata={"ge": 0, "le": 1})
    tokens: int = field(default=0, metadata=upto(L.MAX_TOKENS, ge=0))
    prefixes: int = field(default=1, metadata=upto(L.MAX_REQUESTS))


@dataclass(frozen=True)
class SloSpec:
    ttft_s: float = field(default=1.0, metadata={"gt": 0})
    tpot_s: float = field(default=0.1, metadata={"gt": 0})


@dataclass(frozen=True)
class CapacitySpec:
    """Highest sustainable rate per node under the SLO, and nodes needed for a traffic."""

    traffic_per_s: float = field(default=0.0, metadata={"ge": 0})    # total traffic to size for (0: skip)
    attainment: float = field(default=0.9, metadata={"gt": 0, "le": 1})  # share of requests meeting the SLO
    requests: int = field(default=400, metadata=upto(L.MAX_REQUESTS))    # per probe
    iterations: int = field(default=8, metadata=upto(L.MAX_BISECTION))   # bisection steps


@dataclass(frozen=True)
class SchedulerOverride:
    """Workload-level settings put over every platform's stack scheduler (None: the stack's)."""

    max_sequences: Optional[int] = field(default=None, metadata=positive())
    max_batched_tokens: Optional[int] = field(default=None, metadata=positive())
    kv_block_tokens: Optional[int] = field(default=None, metadata=positive())
    chunked_prefill: Optional[bool] = None
    preemption: Optional[PreemptionMode] = None
    memory_reserve_fraction: Optional[float] = field(default=None, metadata={"ge": 0, "le": 0.9})
    static_batch_sequences: Optional[int] = field(default=None, metadata=positive())
    models_per_step: Optional[int] = field(default=None, metadata=positive())
    adapters_per_step: Optional[int] = field(default=None, metadata=positive())
    prefix_caching: Optional[bool] = None


@dataclass(frozen=True)
class ServeCoeSpec:
    """Serving a Composition of Experts: a router on every request, one queue per expert."""

    router: str
    experts: str
    count: int = field(metadata=upto(L.MAX_EXPERTS))
    routing: RoutingSpec = RoutingSpec()
    cache: CacheSpec = CacheSpec()
    policy: CoePolicy = CoePolicy.FIFO
    max_wait_s: float = field(default=1.0, metadata={"gt": 0})   # grouped: bound on a request's wait
    batching: CoeBatching = CoeBatching.RUN_TO_COMPLETION


@dataclass(frozen=True)
class ServeAdaptersSpec:
    """Many LoRA adapters over one base model (``model``), served as cheap experts
    (rdusim.serve.adapters): no router; each request names its adapter, drawn by ``popularity``."""

    count: int = field(metadata=upto(L.MAX_EXPERTS))
    rank: int = field(default=16, metadata={"gt": 0, "le": 65_536})
    targets: tuple[str, ...] = ("q_proj", "v_proj")
    popularity: RoutingSpec = RoutingSpec()
    cache: CacheSpec = CacheSpec()

    def __post_init__(self) -> None:
        unknown = [t for t in self.targets if t not in LORA_MODULES]
        if unknown or not self.targets:
            raise ValueError("targets", f"one or more module names among {list(LORA_MODULES)}", list(self.targets))


@dataclass(frozen=True)
class ServeWorkload:
    name: str
    kind: str
    platforms: Mapping[str, PlatformSpec]
    model: str = "llama2-7b"
    arrivals: ArrivalSpec = ArrivalSpec()
    prompt_tokens: LengthSpec = LengthSpec()
    output_tokens: LengthSpec = LengthSpec(value=128)
    requests: int = field(default=1000, metadata=upto(L.MAX_REQUESTS))       # measured requests (after warm-up)
    duration_s: float = field(default=0.0, metadata={"ge": 0})      # > 0: arrivals in this span instead
    warmup_requests: int = field(default=50, metadata=upto(L.MAX_REQUESTS, ge=0))    # served first, not in statistics
    replications: int = field(default=5, metadata=upto(1000))   # independent runs of the main point (95% intervals)
    too_long: TooLong = TooLong.REJECT
    slo: SloSpec = SloSpec()
    prefix: PrefixSpec = PrefixSpec()
    batching: tuple[Batching, ...] = (Batching.CONTINUOUS,)
    rates_per_s: tuple[float, ...] = ()       # load sweep (throughput-latency curves)
    sweep_requests: int = field(default=300, metadata=upto(L.MAX_REQUESTS))  # measured requests per sweep point
    capacity: CapacitySpec = CapacitySpec()
    scheduler: SchedulerOverride = SchedulerOverride()
    coe: Optional[ServeCoeSpec] = None
    adapters: Optional[ServeAdaptersSpec] = None
    trace_requests: int = field(default=50, metadata=upto(L.MAX_REQUESTS, ge=0))    # requests drawn in a --trace timeline
    execution: ExecutionConfig = ExecutionConfig()
    seed: int = field(default=0, metadata=upto(L.MAX_SEED, ge=0))
    description: str = ""

    def __post_init__(self) -> None:
        if any(not r > 0 for r in self.rates_per_s):
            raise ValueError("rates_per_s", "a list of rates > 0 (requests per second)", list(self.rates_per_s))
        if not self.batching:
            raise ValueError("batching", "a non-empty list of continuous / static", [])
        if len(set(self.batching)) < len(self.batching):
            raise ValueError("batching", "each batching mode at most once", [b.value for b in self.batching])
        self._check_arrival_span()

    def _check_arrival_span(self) -> None:
        """Synthetic arrivals that fit a run: at most MAX_REQUESTS of them within duration_s,
        and an expected span of at most MAX_SIM_TIME_S (beyond it the simulated clock can no
        longer resolve a step). Traces are checked when read (rdusim.serve.tracefile)."""
        a = self.arrivals
        if a.process == ArrivalProcess.TRACE:
            return
        if self.duration_s > 0 and a.rate_per_s * self.duration_s > L.MAX_REQUESTS:
            raise ValueError("duration_s", f"at most {L.MAX_REQUESTS:g} expected arrivals (arrivals.rate_per_s "
                             f"x duration_s = {a.rate_per_s:g} x {self.duration_s:g}); a shorter duration",
                             self.duration_s)
        points = [("arrivals.rate_per_s", a.rate_per_s, self.requests if self.duration_s <= 0 else 0)]
        points += [(f"rates_per_s[{i}]", r, self.sweep_requests) for i, r in enumerate(self.rates_per_s)]
        for key, rate, n in points:
            span = (n + self.warmup_requests) / rate
            if span > L.MAX_SIM_TIME_S:
                raise ValueError(key, f"a rate at which the {n + self.warmup_requests} requests arrive within "
                                 f"{L.MAX_SIM_TIME_S:g} s (expected {span:.3g} s): at least "
                                 f"{(n + self.warmup_requests) / L.MAX_SIM_TIME_S:.3g} per second", rate)
