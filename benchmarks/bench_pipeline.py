"""Seconds per kernel of the RDU kernel pipeline: the fast evaluation against the SimPy reference.

    python benchmarks/bench_pipeline.py [--workload workloads/fusion_suite.yaml ...] [--repeat 3]

Runs each workload's study once in process to collect the distinct kernels it simulates
(the socket view, tiles and kernel that reach the run cache), then times
``simulate_kernel_fast`` and ``simulate_kernel_events`` on all of them (CPU seconds of
this process, best of ``--repeat``: other work on the machine inflates them less than wall
time), checks they agree bit for bit, and prints seconds per kernel, per simulated
tile-stage (tiles x stages) and per tile-process (tiles x pipeline processes: stages,
streams, D2D crossings), and the speed-up.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def collect(workload: str) -> list[tuple]:
    import rdusim.engine.rdu.cache as kernel_cache
    from rdusim.config.workload import load_workload
    from rdusim.studies import run_study

    seen: list[tuple] = []
    orig = kernel_cache.simulate_kernel

    def record(kernel, hw, tiles, log=None):
        seen.append((kernel, hw, tiles))
        return orig(kernel, hw, tiles, log)

    kernel_cache.simulate_kernel = record
    try:
        run_study(load_workload(str(ROOT / workload), []))
    finally:
        kernel_cache.simulate_kernel = orig
    return seen


def best(fn, kernels: list[tuple], repeat: int) -> tuple[float, list]:
    times, runs = [], []
    for _ in range(repeat):
        t0 = time.process_time()
        runs = [fn(k, hw, tiles) for k, hw, tiles in kernels]
        times.append(time.process_time() - t0)
    return min(times), runs


def main(argv: list[str] | None = None) -> int:
    from rdusim.engine.rdu.pipeline_events import simulate_kernel_events
    from rdusim.engine.rdu.pipeline_fast import simulate_kernel_fast

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", nargs="+", default=["workloads/fusion_suite.yaml", "workloads/coe150.yaml"])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"{'workload':<34} {'kernels':>7} {'tile-stages':>11} {'evaluation':<10} {'cpu s':>8} "
          f"{'us/kernel':>10} {'us/tile-stage':>13} {'us/tile-proc':>12}  speed-up")
    for workload in args.workload:
        kernels = collect(workload)
        tile_stages = sum(t * len(k.stages) for k, _, t in kernels)
        tile_procs = sum(t * (len(k.stages) + sum(len(s.streams) + sum(s.edge_d2d) for s in k.stages))
                         for k, _, t in kernels)
        ref_s, ref = best(simulate_kernel_events, kernels, args.repeat)
        fast_s, fast = best(simulate_kernel_fast, kernels, args.repeat)
        same = sum(a == b for a, b in zip(fast, ref))
        for name, secs in (("events", ref_s), ("fast", fast_s)):
            print(f"{workload:<34} {len(kernels):>7} {tile_stages:>11} {name:<10} {secs:>8.3f} "
                  f"{1e6 * secs / max(1, len(kernels)):>10.1f} {1e6 * secs / max(1, tile_stages):>13.2f} "
                  f"{1e6 * secs / max(1, tile_procs):>12.2f}  " + (f"{ref_s / fast_s:.2f}x" if name == "fast" else ""))
        print(f"{'':<34} identical KernelRuns: {same} of {len(kernels)}")
        if same != len(kernels):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
