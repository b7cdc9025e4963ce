"""Serving speed: N Llama-2-7B requests with continuous batching on one platform.

Each size runs in a fresh Python process, so its wall time includes everything a user
waits for: loading the workload, simulating the engine steps at the bucket anchors
(no cache survives between processes) and scheduling every request. The shipped
study's stream is used (workloads/serve_llama2_7b.yaml, Poisson at its main rate,
lognormal lengths). Also printed: the scheduler alone (a second pass over the same
stream with the anchors already simulated), per request, to show cost linear in N.

    python benchmarks/bench_serve.py [platform ...]     (default: dgx_h100 sn40l)
"""

from __future__ import annotations

import subprocess
import sys
import time

SIZES = (2500, 5000, 10000)


def one(name: str, n: int) -> None:
    t0 = time.perf_counter()
    from rdusim.config.workload import load_workload
    from rdusim.config.workload_serve import Batching
    from rdusim.cache import RunCache
    from rdusim.serve.platform import ServePlatform, with_scheduler
    from rdusim.studies.serve import Streams, _model, serve_point

    loaded = load_workload("workloads/serve_llama2_7b.yaml", [("warmup_requests", 0)])
    cfg = _model(loaded.spec.model, loaded.file, "model")
    stream = Streams(loaded, cfg.max_position_embeddings).at(loaded.spec.arrivals.rate_per_s, n, 0)
    cache = RunCache()
    plat = ServePlatform.build(name, with_scheduler(loaded.deployment(name, cfg), loaded.spec.scheduler), cache)
    _, m = serve_point(plat, Batching.CONTINUOUS, stream, loaded.spec)
    cold = time.perf_counter() - t0
    t1 = time.perf_counter()
    serve_point(plat, Batching.CONTINUOUS, stream, loaded.spec)
    warm = time.perf_counter() - t1
    print(f"{name:<9} {n:>6} requests: {cold:6.2f} s wall from a fresh process ({cache.misses['step']} engine steps "
          f"simulated); scheduler alone {warm:5.2f} s = {1e6 * warm / n:5.1f} us/request; {m['steps']:.0f} steps, "
          f"{m['requests_per_s']:.2f} req/s, TTFT p99 {m['ttft.p99_s']:.3f} s", flush=True)


def main(platforms: list[str]) -> None:
    for name in platforms:
        for n in SIZES:
            subprocess.run([sys.executable, __file__, "--one", name, str(n)], check=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        one(sys.argv[2], int(sys.argv[3]))
    else:
        main(sys.argv[1:] or ["dgx_h100", "sn40l"])
