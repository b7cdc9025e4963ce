"""The documented serving figures (README "Serving under load"), from
``rdusim run workloads/serve_llama2_7b.yaml`` and ``workloads/serve_coe150.yaml``."""

from __future__ import annotations

import math
from typing import Any, Mapping

from rdusim.docs.figure_base import PLATFORMS, figure
from rdusim.docs.runs import Runs
from rdusim.config.workload import REPO_ROOT
from rdusim.config.yamlio import load_yaml

SHORT = {"sn40l": "SN40L", "dgx_h100": "H100", "dgx_a100": "A100"}
SERVE = "rdusim run workloads/serve_llama2_7b.yaml"
SERVE_COE = "rdusim run workloads/serve_coe150.yaml"


def _rates(workload: str) -> list[float]:
    return [float(r) for r in load_yaml(REPO_ROOT / "workloads" / workload)["rates_per_s"]]


def _loads(m: Mapping[str, Any], p: str, mode: str, rates: list[float], key: str) -> list[float]:
    return [m[f"serve.{p}.{mode}.load{i}.{key}"] for i in range(len(rates))]


def _num(x: float) -> str:
    return f"{x:g}"


@figure("serve.ttft_knee")
def serve_ttft_knee(runs: Runs) -> str:
    """The highest swept rate up to which every platform keeps p99 TTFT under 100 ms, and the
    worst p99 TTFT up to it."""
    m, rates = runs.metrics(SERVE), _rates("serve_llama2_7b.yaml")
    p99 = {p: _loads(m, p, "continuous", rates, "ttft.p99_s") for p in PLATFORMS}
    knee = 0
    while knee < len(rates) and all(p99[p][knee] < 0.1 for p in PLATFORMS):
        knee += 1
    if knee == 0:
        return "over 100 ms from the lowest rate on"
    worst = max(p99[p][i] for p in PLATFORMS for i in range(knee))
    return f"under {math.ceil(worst * 100) * 10} ms up to {_num(rates[knee - 1])} req/s"


@figure("serve.flat")
def serve_flat(runs: Runs) -> str:
    """Where continuous batching's throughput stops growing with the offered rate: a platform
    whose departures at the top rate fall short of 90% of it has flattened."""
    m, rates = runs.metrics(SERVE), _rates("serve_llama2_7b.yaml")
    peak = {p: max(_loads(m, p, "continuous", rates, "requests_per_s")) for p in PLATFORMS}
    top = {p: _loads(m, p, "continuous", rates, "requests_per_s")[-1] for p in PLATFORMS}
    flat = [p for p in ("dgx_a100", "dgx_h100", "sn40l") if top[p] < 0.9 * rates[-1]]
    growing = [p for p in ("dgx_a100", "dgx_h100", "sn40l") if p not in flat]
    text = "about " + " and ".join(f"{peak[p]:.0f} ({SHORT[p]})" for p in flat) + " req/s" if flat else \
        "no rate swept"
    for p in growing:
        text += f", while the {SHORT[p]} still serves {top[p]:.0f} req/s at {_num(rates[-1])}"
    return text


@figure("serve.capacity")
def serve_capacity(runs: Runs) -> str:
    m = runs.metrics(SERVE)
    return " / ".join(f"{m[f'serve.{p}.continuous.capacity.max_rate_per_s']:.1f}" for p in PLATFORMS)


@figure("serve.static")
def serve_static(runs: Runs) -> str:
    m, rates = runs.metrics(SERVE), _rates("serve_llama2_7b.yaml")
    static = {p: max(_loads(m, p, "static", rates, "requests_per_s")) for p in PLATFORMS}
    cont = {p: max(_loads(m, p, "continuous", rates, "requests_per_s")) for p in PLATFORMS}
    ratio = [cont[p] / static[p] for p in PLATFORMS]
    return (f"{min(static.values()):.0f}-{max(static.values()):.0f} req/s: continuous batching serves "
            f"{min(ratio):.0f}-{max(ratio):.0f}x more")


@figure("serve.kv_max")
def serve_kv_max(runs: Runs) -> str:
    m, rates = runs.metrics(SERVE), _rates("serve_llama2_7b.yaml")
    most = max(v for p in PLATFORMS for mode in ("continuous", "static")
               for v in _loads(m, p, mode, rates, "kv_occupancy.max"))
    return f"{math.ceil(most * 100)}%"


@figure("serve_coe.miss")
def serve_coe_miss(runs: Runs) -> str:
    m = runs.metrics(SERVE_COE)
    misses = [1 - m[f"serve.{p}.coe.hit_rate"] for p in PLATFORMS]
    return f"{5 * round(20 * sum(misses) / len(misses)):.0f}%"


@figure("serve_coe.ttft_low")
def serve_coe_ttft_low(runs: Runs) -> str:
    m, rates = runs.metrics(SERVE_COE), _rates("serve_coe150.yaml")
    p99 = {p: _loads(m, p, "coe", rates, "ttft.p99_s")[0] for p in PLATFORMS}
    return (f"at {_num(rates[0])} req/s p99 TTFT is {p99['sn40l']:.1f} s on the SN40L against "
            f"{p99['dgx_h100']:.1f} s (H100) and {p99['dgx_a100']:.1f} s (A100)")


@figure("serve_coe.capacity")
def serve_coe_capacity(runs: Runs) -> str:
    m = runs.metrics(SERVE_COE)
    return " / ".join(f"{m[f'serve.{p}.coe.capacity.max_rate_per_s']:.2f}" for p in PLATFORMS)
