"""Serving speed: N Llama-2-7B requests with continuous batching on one platform.

Wall time of the whole serving run -- the engine steps it simulates at the bucket
anchors included -- for 2,500 / 5,000 / 10,000 requests of the shipped study's stream
(workloads/serve_llama2_7b.yaml, its main rate), each from a fresh StepCache, plus the
time of the scheduler alone (anchors already simulated) to show cost linear in requests.

    python benchmarks/bench_serve.py [platform ...]     (default: dgx_h100 sn40l)
"""

from __future__ import annotations

import sys
import time

from rdusim.config.workload import load_workload
from rdusim.config.workload_serve import Batching
from rdusim.engine.stepper import StepCache
from rdusim.serve.platform import ServePlatform, with_scheduler
from rdusim.studies.serve import Streams, _model, serve_point


def main(platforms: list[str]) -> None:
    loaded = load_workload("workloads/serve_llama2_7b.yaml", [("warmup_requests", 0)])
    cfg = _model(loaded.spec.model, loaded.file, "model")
    streams = Streams(loaded, cfg.max_position_embeddings)
    for name in platforms:
        dep = with_scheduler(loaded.deployment(name, cfg), loaded.spec.scheduler)
        for n in (2500, 5000, 10000):
            stream = streams.at(streams.main_rate, n, 0)
            cache = StepCache()
            t0 = time.perf_counter()
            plat = ServePlatform.build(name, dep, cache)
            _, m = serve_point(plat, Batching.CONTINUOUS, stream, loaded.spec)
            cold = time.perf_counter() - t0
            t1 = time.perf_counter()
            serve_point(plat, Batching.CONTINUOUS, stream, loaded.spec)
            warm = time.perf_counter() - t1
            print(f"{name:<9} {n:>6} requests: {cold:6.2f} s wall ({cache.misses} engine steps simulated), "
                  f"scheduler alone {warm:5.2f} s = {1e6 * warm / n:5.1f} us/request; "
                  f"{m['steps']:.0f} steps, {m['requests_per_s']:.2f} req/s, TTFT p99 {m['ttft.p99_s']:.3f} s")


if __name__ == "__main__":
    main(sys.argv[1:] or ["dgx_h100", "sn40l"])
