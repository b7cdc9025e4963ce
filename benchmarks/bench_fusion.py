"""Simulator speed on the fusion study: wall and CPU seconds for the whole suite, with
kernels simulated versus reused from the kernel cache, per benchmark.

    python benchmarks/bench_fusion.py                       # workloads/fusion_suite.yaml, cold cache
    python benchmarks/bench_fusion.py --tiles 128           # finer granularity
    python benchmarks/bench_fusion.py --workload workloads/monarch_fft.yaml

Target: the full suite in under 10 s on a 2-core machine. Each benchmark runs unfused,
fused + SO and fused + HO (two compiles, three orchestrations; launch modes share kernels).
"""

from __future__ import annotations

import argparse
import sys
import time

from rdusim.cache import RunCache
from rdusim.config.workload import load_workload
from rdusim.studies import run_study


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", default="workloads/fusion_suite.yaml")
    ap.add_argument("--tiles", type=int, help="override the workload's tiles per kernel")
    ap.add_argument("--target-s", type=float, default=10.0)
    args = ap.parse_args(argv)
    sets = [("tiles", args.tiles)] if args.tiles else []
    loaded = load_workload(args.workload, sets)
    cache = RunCache()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    per = []
    for bench in loaded.spec.benchmarks:
        one = _only(loaded, bench)
        sim0, reuse0, t0 = cache.misses["kernel"], cache.hits["kernel"], time.perf_counter()
        result = run_study(one, cache=cache)
        per.append((bench.name, time.perf_counter() - t0, cache.misses["kernel"] - sim0,
                    cache.hits["kernel"] - reuse0,
                    sum(int(result.metrics.get(f"fusion.{bench.name}.{m}.kernels", 0))
                        for m in ("unfused", "fused_so", "fused_ho"))))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    print(f"{'benchmark':<28} {'wall s':>8} {'kernels':>8} {'simulated':>10} {'reused':>8}")
    for name, secs, sim, reused, kernels in per:
        print(f"{name:<28} {secs:>8.3f} {kernels:>8d} {sim:>10d} {reused:>8d}")
    print(f"\n{loaded.name}: {len(per)} benchmarks x 3 modes, tiles={loaded.spec.tiles}")
    print(f"wall {wall:.2f} s, cpu {cpu:.2f} s; kernels simulated {cache.misses['kernel']}, reused {cache.hits['kernel']} "
          f"(target < {args.target_s:.0f} s wall: {'met' if wall < args.target_s else 'MISSED'})")
    return 0


def _only(loaded, bench):
    import dataclasses

    spec = dataclasses.replace(loaded.spec, benchmarks=(bench,))
    return dataclasses.replace(loaded, spec=spec)


if __name__ == "__main__":
    sys.exit(main())
