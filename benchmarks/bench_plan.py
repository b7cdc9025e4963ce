"""Planning speed: ``rdusim plan`` over >= 200 fleet configurations, whole process.

workloads/plan_chat.yaml with ``plan.exhaustive: true`` (every replica count, every
prefill/decode replica pair up to ``max_replicas``, not just up to the first fleet meeting
the SLO), on ``--jobs`` processes, in a fresh process (no cache survives: the engine steps
of every deployment are simulated too). Goal: >= 200 configurations in <= 60 s on 2 cores.

    python benchmarks/bench_plan.py [jobs] [max_replicas] [--shared-cache] [--record]     (default: 2 4)

``--shared-cache``: an empty ``--cache-dir`` in a temporary folder, so the processes do not
each simulate the same engine steps. ``--record``: store the figures in benchmarks/speed.json
(benchmarks/record.py; the README's Speed section reads them). The CPU time (user + sys of
every process) is printed beside the wall time: on a shared machine the wall time stretches.
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
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    jobs = args[0] if args else "2"
    top = int(args[1]) if len(args) > 1 else 4
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
    if "--record" in sys.argv:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from record import record

        record("plan", {"command": f"python benchmarks/bench_plan.py {jobs} {top}", "wall_s": round(wall, 2),
                        "cpu_s": round(cpu, 2), "goal": ">= 200 configurations in <= 60 s",
                        "met": n >= 200 and wall <= 60,
                        "detail": f"{n} configurations on {jobs} processes, CPU {cpu:.1f} s"})


if __name__ == "__main__":
    main()
