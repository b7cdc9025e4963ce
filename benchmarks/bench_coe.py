"""How long the main job takes: `rdusim run workloads/coe150.yaml`, end to end and in-process.

    python benchmarks/bench_coe.py [--repeat 3]

Prints wall seconds for the CLI (a fresh process: imports, engine simulations, serving,
writing results.json) and for the study alone in one process (cold, then warm caches).
Target: under 10 s end to end on a 2-core machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workload", default="workloads/coe150.yaml")
    args = ap.parse_args()
    cli = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as out:
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "rdusim.cli", "run", args.workload, "--out", out],
                           cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
            cli.append(time.perf_counter() - t)
    print(f"rdusim run {args.workload}: median {statistics.median(cli):.2f} s, "
          f"min {min(cli):.2f} s over {args.repeat} runs (fresh process each)")

    from rdusim.config.workload import load_workload
    from rdusim.studies import run_study

    loaded = load_workload(ROOT / args.workload)
    t = time.perf_counter()
    result = run_study(loaded)
    cold = time.perf_counter() - t
    t = time.perf_counter()
    run_study(loaded)
    warm = time.perf_counter() - t
    print(f"study in-process: cold {cold:.2f} s, warm (engine caches filled) {warm:.2f} s, "
          f"{len(result.metrics)} metrics, {len(result.records)} records")


if __name__ == "__main__":
    main()
