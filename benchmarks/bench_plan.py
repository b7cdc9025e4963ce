"""Planning speed: ``rdusim plan`` over >= 200 fleet configurations, whole process.

workloads/plan_chat.yaml with ``plan.exhaustive: true`` (every replica count, every
prefill/decode replica pair up to ``max_replicas``, not just up to the first fleet meeting
the SLO), on ``--jobs`` processes, in a fresh process (no cache survives: the engine steps
of every deployment are simulated too). Goal: >= 200 configurations in <= 60 s on 2 cores.

    python benchmarks/bench_plan.py [jobs] [max_replicas] [--shared-cache]     (default: 2 4)

``--shared-cache``: an empty ``--cache-dir`` in a temporary folder, so the processes do not
each simulate the same engine steps.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    jobs = sys.argv[1] if len(sys.argv) > 1 else "2"
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    shared = "--shared-cache" in sys.argv   # a fresh --cache-dir the processes share (empty at the start)
    data = yaml.safe_load((ROOT / "workloads" / "plan_chat.yaml").read_text())
    data["plan"].update(exhaustive=True, max_replicas=top)
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "plan_bench.yaml"
        data["arrivals"]["trace"] = str(ROOT / "data" / "azure_conv_excerpt.csv")
        data["plan"]["clusters"] = {k: str(ROOT / "clusters" / Path(v).name) for k, v in data["plan"]["clusters"].items()}
        f.write_text(yaml.safe_dump(data))
        t0 = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-m", "rdusim.cli", "plan", str(f), "--out", str(Path(tmp) / "out"),
                        "--jobs", jobs] + (["--cache-dir", str(Path(tmp) / "cache")] if shared else []), check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        n = json.loads((Path(tmp) / "out" / "results.json").read_text())["metrics"]["plan.configurations"]
    # the machine's load beside the run: a shared machine stretches the wall time, not the CPU time
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"rdusim plan, exhaustive, max_replicas {top}, --jobs {jobs}: {n} configurations in {wall:.1f} s "
          f"whole process{', shared fresh cache' if shared else ''} ({wall / n * 1e3:.0f} ms each; CPU {cpu:.1f} s "
          f"user+sys over all processes; load average {load:.1f}); goal >= 200 in <= 60 s: "
          f"{'met' if n >= 200 and wall <= 60 else 'MISSED'}")


if __name__ == "__main__":
    main()
