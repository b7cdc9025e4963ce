"""The Speed section's figures: what the benchmarks recorded in ``benchmarks/speed.json``.

Timings are not reproducible from the code alone (they depend on the machine and the
moment), so these figures are not re-measured at regeneration: each benchmark run with
``--record`` stores what it printed (``benchmarks/record.py``), with its date, commit,
machine and reference loop, and the README prints that file. A timing typed into the
README by hand differs from the file and fails ``tests/test_readme_figures.py``.
"""

from __future__ import annotations

import json
from typing import Any

from rdusim.config.workload import REPO_ROOT
from rdusim.docs.figure_base import figure
from rdusim.docs.runs import Runs

SPEED = REPO_ROOT / "benchmarks" / "speed.json"

_TARGET_NAMES = {
    "coe150": "`rdusim run workloads/coe150.yaml`",
    "fusion_suite": "fusion suite",
    "fusion_suite_vs_h100": "fusion suite vs H100",
    "model_run": "a model run (llama2_7b_chat)",
    "validate": "`rdusim validate`",
    "sweep50_2workers": "50 coe150 sweep points, 2 workers",
}


def _speed(runs: Runs) -> dict[str, Any]:
    return runs.memo("speed.json", lambda: json.loads(SPEED.read_text()))


def _entry(runs: Runs, name: str) -> dict[str, Any]:
    data = _speed(runs)
    if name not in data:
        raise KeyError(f"benchmarks/speed.json has no {name!r} (run its benchmark with --record)")
    return data[name]


def _when(e: dict[str, Any]) -> str:
    return f"{e['date']}, commit {e['commit']}, load average {e['load_average'][0]:.2f} on {e['cpus']} CPUs"


@figure("speed.targets")
def speed_targets(runs: Runs) -> str:
    both = _entry(runs, "targets")
    one = _speed(runs).get("targets_jobs1")
    head = ["target", "goal s", f"wall s, default `--jobs` (median of {both['repeat']})", "CPU s"]
    if one:
        head.append(f"wall s, `--jobs 1` (median of {one['repeat']})")
    head.append("met")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, t in both["targets"].items():
        row = [_TARGET_NAMES.get(name, name), f"{t['goal_s']:g}", f"{t['wall_s']:.2f}", f"{t['cpu_s']:.2f}"]
        if one:
            o = one["targets"].get(name)
            row.append(f"{o['wall_s']:.2f}" if o and name != "sweep50_2workers" else "(2 workers)")
        row.append("yes" if t["wall_s"] <= t["goal_s"] else "**no**")
        lines.append("| " + " | ".join(row) + " |")
    ref = both["reference_s"]
    lines += ["", f"Recorded {_when(both)}; machine reference {ref[0]:.2f} s before, {ref[1]:.2f} s after; "
                  f"rdusim bytecode {both['bytecode']}."]
    return "\n".join(lines)


@figure("speed.serve")
def speed_serve(runs: Runs) -> str:
    lines = ["| benchmark | what | wall s | goal | met | recorded |", "|---|---|---|---|---|---|"]
    for name, what in (("serve_100k", "100,000 requests, one platform, through the CLI, whole process"),
                       ("serve_10k", "10,000 requests per platform, continuous batching, fresh process"),
                       ("plan", "`rdusim plan`, exhaustive search, whole process")):
        e = _speed(runs).get(name)
        if e is None:
            continue
        detail = e.get("detail", "")
        goal = e.get("goal", "")
        met = "" if "met" not in e else ("yes" if e["met"] else "**no**")
        lines.append(f"| `{e['command']}` | {what}{'; ' + detail if detail else ''} | {e['wall_s']:.2f} | "
                     f"{goal} | {met} | {_when(e)} |")
    return "\n".join(lines)
