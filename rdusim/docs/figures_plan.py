"""The documented fleet-planning figures (README "Planning a fleet"), from
``rdusim plan workloads/plan_chat.yaml``."""

from __future__ import annotations

from rdusim.docs.figure_base import figure
from rdusim.docs.runs import Runs

PLAN = "rdusim plan workloads/plan_chat.yaml --jobs 1"


def _label(c: dict) -> str:
    if c["layout"] == "colocated":
        return f"{c['prefill']} x{c['decode_replicas']}"
    return f"{c['prefill']} x{c['prefill_replicas']} -> {c['decode']} x{c['decode_replicas']}"


@figure("plan.smallest")
def plan_smallest(runs: Runs) -> str:
    """Per model: the smallest co-located fleet per platform and the smallest disaggregated
    fleet (any prefill/decode pair), with its p99s and the binding constraint."""
    doc = runs.results(PLAN)
    met = [c for c in doc["configurations"] if c["met"]]
    lines = ["| model | fleet | nodes | p99 TTFT s | p99 TBT s | p99 E2E s | binding |", "|---|---|---|---|---|---|---|"]
    for model in dict.fromkeys(c["model"] for c in doc["configurations"]):
        mine = [c for c in met if c["model"] == model]
        pick = []
        for p in dict.fromkeys(c["prefill"] for c in mine if c["layout"] == "colocated"):
            pick.append(min((c for c in mine if c["layout"] == "colocated" and c["prefill"] == p),
                            key=lambda c: (c["nodes"], c["binding_ratio"])))
        dis = [c for c in mine if c["layout"] == "disaggregated"]
        if dis:
            pick.append(min(dis, key=lambda c: (c["nodes"], c["e2e.p99_s"])))
        for c in pick:
            lines.append(f"| {model} | {c['layout']} {_label(c)} | {c['nodes']} | {c['ttft.p99_s']:.3g} | "
                         f"{c['tbt.p99_s']:.3g} | {c['e2e.p99_s']:.3g} | {c['binding'].split('.')[0]} |")
    return "\n".join(lines)


@figure("plan.count")
def plan_count(runs: Runs) -> str:
    return str(runs.results(PLAN)["metrics"]["plan.configurations"])
