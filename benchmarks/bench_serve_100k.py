"""Serving at scale: 100,000 Llama-2-7B requests on one platform through the CLI, whole process.

The issue-24 target: <= 2 s wall on a 2-core machine, results bit-identical. The workload is
serve_llama2_7b's stream (Poisson at 8 req/s, lognormal lengths) on one platform, continuous
batching, one replication, no sweep and no capacity search; the CLI writes results.json and
requests.csv (the per-request records) into a fresh folder (their sizes, the process's CPU
time -- the figure to compare on a shared machine -- and its peak memory are printed too).

    python benchmarks/bench_serve_100k.py [platform] [requests] [--record]     (default: dgx_h100 100000)

``--record``: store the figures in benchmarks/speed.json (the README's Speed section reads them).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time


def main(platform: str, n: int, record: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "run")
        cmd = [sys.executable, "-m", "rdusim.cli", "run", "workloads/serve_llama2_7b.yaml", "--out", out,
               "--set", f"requests={n}", "--set", "replications=1", "--set", "rates_per_s=[]",
               "--set", "capacity.traffic_per_s=0", "--set", "batching=[continuous]",
               "--set", f"platforms={{{platform}: {{arch: arch/{platform}.yaml, tp: 8, "
               f"stack: {'sambanova' if platform.startswith('sn') else 'vllm'}}}}}"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak, cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
        size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out)) / 1e6
        rj = os.path.getsize(os.path.join(out, "results.json")) / 1e6
    print(f"{platform} {n} requests: {wall:.2f} s whole process ({cpu:.2f} s CPU), peak {peak:.0f} MB, "
          f"results.json {rj:.1f} MB "
          f"(run folder {size:.1f} MB)")
    if record:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from record import record as store

        store("serve_100k", {"command": f"python benchmarks/bench_serve_100k.py {platform} {n}", "wall_s": round(wall, 2),
                             "cpu_s": round(cpu, 2), "goal": "<= 2 s", "met": wall <= 2.0,
                             "detail": f"{cpu:.1f} s CPU, peak {peak:.0f} MB, results.json {rj:.1f} MB, "
                                       f"run folder {size:.1f} MB"})


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--record"]
    main(args[0] if args else "dgx_h100", int(args[1]) if len(args) > 1 else 100000, "--record" in sys.argv)
