"""Sweep throughput: points per second for 1 and 2 local workers (and optionally Dask).

    python benchmarks/bench_sweep.py                      # 50 coe150 variants, 1 and 2 workers
    python benchmarks/bench_sweep.py --workers 1 2 --executor local dask
    python benchmarks/bench_sweep.py --workload workloads/llama2_7b_chat.yaml \
        --grid arch.sn40l.launch.software_s=0,1e-5,2e-5,4e-5,8e-5

The default sweep: coe150 with its expert-count sub-sweep switched off (``sweep_experts``
set to one entry) over 10 DDR bandwidths x 5 expert counts = 50 points. Each sweep writes
to a fresh temporary directory; the time includes validation, pool start and commits.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from rdusim.config.yamlio import parse_set
from rdusim.sweep.executor import Executor, ExecutorSpec
from rdusim.sweep.grid import expand, validate_points
from rdusim.sweep.point import PointStatus
from rdusim.sweep.runner import run_sweep
from rdusim.sweep.spec import sweep_from_flags
from rdusim.sweep.store import SweepStore

DEFAULT_WORKLOAD = "workloads/coe150.yaml"
DEFAULT_GRID = [
    "arch.sn40l.socket.ddr.bandwidth_bytes_per_s=" + ",".join(f"{g}e9" for g in (50, 75, 100, 125, 150, 175, 200,
                                                                                  250, 300, 400)),
    "experts.count=25,50,100,150,200",
]
DEFAULT_SET = ["sweep_experts=[]"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", default=DEFAULT_WORKLOAD)
    ap.add_argument("--grid", action="append", help=f"default: {DEFAULT_GRID}")
    ap.add_argument("--set", action="append", help=f"default (coe150 only): {DEFAULT_SET}")
    ap.add_argument("--metrics", nargs="+", default=["*.latency_s", "*.oom", "coe.speedup.*"])
    ap.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--executor", nargs="+", choices=[e.value for e in Executor], default=["local"])
    args = ap.parse_args(argv)
    grid = args.grid or DEFAULT_GRID
    sets = args.set if args.set is not None else (DEFAULT_SET if args.workload == DEFAULT_WORKLOAD else [])
    for s in sets:
        parse_set(s)
    spec = sweep_from_flags(args.workload, grid, zip_=False, metrics=args.metrics, seed=None, sets=sets)
    points = expand(spec)
    t0 = time.perf_counter()
    validate_points(spec, points)
    t_val = time.perf_counter() - t0
    print(f"sweep of {args.workload}: {len(points)} points over {', '.join(spec.keys)}; "
          f"validation {t_val:.2f} s ({1e3 * t_val / len(points):.1f} ms/point)")
    print(f"{'executor':<9} {'workers':>7} {'wall s':>8} {'points/s':>9} {'ok':>4} {'error':>6} {'oom':>4}")
    for executor in args.executor:
        for workers in args.workers:
            with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
                exe = ExecutorSpec(Executor(executor), workers, None)
                t0 = time.perf_counter()
                outcome = run_sweep(spec, Path(tmp) / "out", exe)
                wall = time.perf_counter() - t0
                failed = [r for r in SweepStore.open(Path(tmp) / "out", lock=False).rows()
                          if r.status == PointStatus.ERROR]
            c = outcome.counts
            print(f"{executor:<9} {workers:>7} {wall:>8.2f} {len(points) / wall:>9.2f} "
                  f"{c.get('ok', 0):>4} {c.get('error', 0):>6} {c.get('oom', 0):>4}", flush=True)
            if failed:
                print(f"  first error (point {failed[0].index}): {failed[0].error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
