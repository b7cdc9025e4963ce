"""Workload kind ``fusion``: the SN40L paper's fusion study (Table 1, Figure 6).

Each benchmark is one step of a graph: a model phase (prefill / decode / train) or a
long-convolution kernel (``flashfftconv``, ``monarch_fft``). Every RDU platform runs it
unfused, fused + software-orchestrated launch, and fused + hardware orchestration;
a GPU platform runs it unfused and fused with its own launch mode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Optional

from rdusim.config import limits as L
from rdusim.config.limits import upto
from rdusim.config.execution import ExecutionConfig
from rdusim.config.workload import PlatformSpec
from rdusim.graph.phase import Phase

FFT_KINDS = ("flashfftconv", "monarch_fft")
_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")


@dataclass(frozen=True)
class FusionBenchmark:
    name: str                                  # appears inside metric keys: no dots
    model: str                                 # a model in models/ (or a path), or flashfftconv / monarch_fft
    phase: Optional[Phase] = None              # required for models
    batch: int = field(default=1, metadata=upto(L.MAX_BATCH))
    seq: int = field(default=2048, metadata=upto(L.MAX_FFT))    # models, flashfftconv: sequence length
    tp: Optional[int] = field(default=None, metadata=upto(L.MAX_TP))   # sockets; default the platform's tp
    weight_density: float = field(default=1.0, metadata={"gt": 0, "le": 1})   # sparseGPT: 0.125
    layers: Optional[int] = field(default=None, metadata=upto(L.MAX_LAYERS))  # limit the depth (quick runs)
    channels: int = field(default=1, metadata=upto(L.MAX_CHANNELS))   # flashfftconv: hidden channels
    order: int = field(default=2, metadata=upto(L.MAX_ORDER))      # monarch / flashfftconv decomposition order
    n: int = field(default=4096, metadata=upto(L.MAX_FFT))       # monarch_fft: FFT size
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError("name", "letters, digits, '_' or '-' (names appear inside metric keys)", self.name)
        if self.model not in FFT_KINDS and self.phase is None:
            raise ValueError("phase", "one of prefill, decode, train for a model benchmark", None)
        if self.model == "monarch_fft":
            _check_root(self.n, self.order)

    @property
    def is_fft(self) -> bool:
        return self.model in FFT_KINDS


@dataclass(frozen=True)
class FusionWorkload:
    name: str
    kind: str
    platforms: Mapping[str, PlatformSpec]
    benchmarks: tuple[FusionBenchmark, ...]
    execution: ExecutionConfig = ExecutionConfig()   # simulation granularity (tiles, ...)
    kernel_records: bool = True               # one record per kernel (False: none, smaller results.json)
    seed: int = field(default=0, metadata=upto(L.MAX_SEED, ge=0))
    description: str = ""

    def __post_init__(self) -> None:
        if not self.benchmarks:
            raise ValueError("benchmarks", "at least one benchmark", [])
        if not self.platforms:
            raise ValueError("platforms", "at least one platform", {})
        seen = set()
        for i, b in enumerate(self.benchmarks):
            if b.name in seen:
                raise ValueError(f"benchmarks[{i}].name", "unique benchmark names", b.name)
            seen.add(b.name)


def _check_root(n: int, order: int) -> None:
    """A Monarch FFT of length n and order k splits n into k equal factors: n = r ** k."""
    factors, m, p = 0, n, 2
    while p * p <= m:
        while m % p == 0:
            factors, m = factors + 1, m // p
        p += 1
    factors += m > 1
    if order > factors:
        raise ValueError("order", f"at most {factors} (the prime factors of n={n})", order)
    root = round(n ** (1 / order))
    if not any(r ** order == n for r in (root - 1, root, root + 1) if r >= 2):
        below = max(r for r in (root - 1, root, root + 1) if r ** order < n) if root > 2 else 2
        raise ValueError("n", f"an FFT length with an integer order-{order} root, so that the Monarch "
                         f"decomposition has {order} equal factors (e.g. {below ** order} or "
                         f"{(below + 1) ** order})", n)
