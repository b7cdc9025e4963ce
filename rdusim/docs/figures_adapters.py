"""The documented figures of continuous batching across CoE experts and of LoRA adapters
served as experts (README "Serving under load"), from ``rdusim run
workloads/serve_coe150.yaml`` with and without ``--set coe.batching=continuous`` and
``rdusim run workloads/serve_adapters.yaml``."""

from __future__ import annotations

from rdusim.docs.figure_base import PLATFORMS, figure
from rdusim.docs.figures_serve import SERVE_COE, SHORT
from rdusim.docs.runs import Runs

SERVE_COE_CONT = "rdusim run workloads/serve_coe150.yaml --set coe.batching=continuous"
SERVE_ADAPTERS = "rdusim run workloads/serve_adapters.yaml"


@figure("serve_coe.continuous")
def serve_coe_continuous(runs: Runs) -> str:
    """SN40L main point and capacity, run to completion against continuous across experts."""
    a, b = runs.metrics(SERVE_COE), runs.metrics(SERVE_COE_CONT)
    k = "serve.sn40l.coe."
    return (f"p50 / p99 TTFT {a[k + 'ttft.p50_s']:.2f} / {a[k + 'ttft.p99_s']:.1f} s -> "
            f"{b[k + 'ttft.p50_s']:.2f} / {b[k + 'ttft.p99_s']:.1f} s, p50 TPOT {a[k + 'tpot.p50_s'] * 1e3:.1f} -> "
            f"{b[k + 'tpot.p50_s'] * 1e3:.1f} ms, capacity {a[k + 'capacity.max_rate_per_s']:.2f} -> "
            f"{b[k + 'capacity.max_rate_per_s']:.2f} req/s")


@figure("serve_adapters.table")
def serve_adapters_table(runs: Runs) -> str:
    m = runs.metrics(SERVE_ADAPTERS)
    lines = ["| platform | served as | in HBM | p50 / p99 TTFT (s) | p50 TPOT (ms) | hit rate | req/s, trace replayed at 4 req/s |",
             "|---|---|---|---|---|---|---|"]
    last = 3
    for p in PLATFORMS:
        for mode, held in (("adapters", f"{m[f'serve.{p}.adapter_slots']:.0f} of 1000 adapters"),
                           ("coe", f"{m[f'serve.{p}.expert_slots']:.0f} of 150 experts")):
            k = f"serve.{p}.{mode}."
            lines.append(f"| {SHORT[p]} | {mode} | {held} | {m[k + 'ttft.p50_s']:.3f} / {m[k + 'ttft.p99_s']:.3f} | "
                         f"{m[k + 'tpot.p50_s'] * 1e3:.1f} | {m[k + 'hit_rate']:.2f} | "
                         f"{m[k + f'load{last}.requests_per_s']:.2f} |")
    return "\n".join(lines)


@figure("serve_adapters.bytes")
def serve_adapters_bytes(runs: Runs) -> str:
    m = runs.metrics(SERVE_ADAPTERS)
    return f"{m['serve.sn40l.adapter_bytes'] / 1e6:.1f} MB"
