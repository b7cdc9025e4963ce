"""What rdusim's SimPy-driven models cost per event, against raw SimPy.

    python benchmarks/bench_simpy_overhead.py [--repeat 3]

Raw SimPy: processes that only yield timeouts (the cheapest event SimPy has). Then each
model rdusim still runs on SimPy in a shipped study or as a reference: CoE serving with
prefetch (``serve_events``: copies as flows, HBM contention), bulk copies sharing links
(``FlowNetwork``: eight devices loading an expert at once, many times over), and the
kernel pipeline's SimPy reference (``pipeline_events``; the studies use the exact fast
evaluation). Events are counted by SimPy's own ``Environment.step``; CPU seconds per
event divided by raw SimPy's is the overhead factor (issue 14's engine goal: <= 2x). Raw
SimPy is timed again right before each repeat of each model and the factor is the median
of those pairs (the machine's speed drifts between minutes); cpu s is the model's median.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import simpy
import simpy.core

_STEPS = [0]
_STEP = simpy.core.Environment.step


def _counting_step(self):
    _STEPS[0] += 1
    return _STEP(self)


def measure(fn, repeat: int) -> tuple[float, int]:
    """Median CPU seconds of ``fn()`` and the SimPy events it processed."""
    times, events = [], 0
    simpy.core.Environment.step = _counting_step
    try:
        for _ in range(repeat):
            _STEPS[0] = 0
            t0 = time.process_time()
            fn()
            times.append(time.process_time() - t0)
            events = _STEPS[0]
    finally:
        simpy.core.Environment.step = _STEP
    return statistics.median(times), events


def raw_simpy(processes: int = 50, each: int = 2000) -> None:
    env = simpy.Environment()

    def proc(d):
        for _ in range(each):
            yield env.timeout(d)

    for i in range(processes):
        env.process(proc(1e-6 * (1 + i % 7)))
    env.run()


def coe_prefetch() -> None:
    from rdusim.cache import RunCache, using
    from rdusim.config.arch import load_arch
    from rdusim.config.workload_coe import CachePolicy
    from rdusim.engine.coe.serving import ServingSetup, serve_events

    rng = np.random.default_rng(0)
    routes = [rng.integers(0, 150, size=8) for _ in range(200)]
    setup = ServingSetup(arch=load_arch("arch/sn40l.yaml"), devices=8, experts=150, slots=37,
                         expert_bytes=1.35e10, policy=CachePolicy.LRU, prefetch=True,
                         router_s=lambda n: 0.03, expert_s=lambda n: 0.06 + 0.01 * n, hottest=tuple(range(150)),
                         expert_hbm_fraction=lambda n: 0.6)
    with using(RunCache()):
        serve_events(setup, routes)


def flow_copies(copies: int = 300) -> None:
    from rdusim.config.arch import load_arch
    from rdusim.engine.coe.switching import copy_expert, switch_network

    arch = load_arch("arch/sn40l.yaml")
    env = simpy.Environment()
    net, paths = switch_network(env, arch, 8)

    def driver():
        for i in range(copies):
            yield copy_expert(env, net, paths, 1.35e10, f"c{i}")
            if i % 3 == 0:          # overlapping copies: the rates are shared
                copy_expert(env, net, paths, 1.35e10, f"o{i}")

    env.process(driver())
    env.run()


def pipeline_reference() -> None:
    from rdusim.cache import RunCache
    from rdusim.config.arch import load_arch
    from rdusim.config.deployment import Deployment
    from rdusim.config.model import load_model
    from rdusim.config.policy import FusionPolicy, LaunchMode
    from rdusim.engine.evaluation import reference
    from rdusim.engine.rdu.model_step import model_step
    from rdusim.graph.phase import Phase

    cache = RunCache()
    arch = load_arch("arch/sn40l.yaml")
    dep = Deployment.of(arch, load_model("llama2-7b"), tp=8, fusion=FusionPolicy.FUSED, launch=LaunchMode.HARDWARE)
    with reference():
        model_step(dep, Phase.DECODE, 8, 512, 0.0, cache.get)


CASES = {"raw SimPy (timeouts only)": raw_simpy, "CoE serving with prefetch": coe_prefetch,
         "bulk copies sharing links": flow_copies, "kernel pipeline (SimPy reference)": pipeline_reference}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    raw_name, raw_fn = next(iter(CASES.items()))
    print(f"{'model':<36} {'events':>9} {'cpu s':>8} {'us/event':>9} {'x raw':>6}")
    for name, fn in CASES.items():
        # each repeat times raw SimPy right before the model, so a drift in the machine's speed
        # (up to a third between minutes here) cancels in the factor: the median of the pairs
        pairs = []
        for _ in range(args.repeat):
            raw_cpu, raw_events = measure(raw_fn, 1)
            cpu, events = measure(fn, 1)
            pairs.append((cpu, events, cpu / events / (raw_cpu / raw_events) if events else float("nan")))
        cpu = statistics.median(p[0] for p in pairs)
        factor = statistics.median(p[2] for p in pairs)
        per = cpu / events * 1e6 if events else float("nan")
        print(f"{name:<36} {events:>9} {cpu:>8.3f} {per:>9.2f} {factor:>6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
