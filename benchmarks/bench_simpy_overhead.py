"""What rdusim's SimPy-driven models cost per event, against raw SimPy.

    python benchmarks/bench_simpy_overhead.py [--repeat 3]

Raw SimPy: processes that only yield timeouts (the cheapest event SimPy has). Then each
model rdusim still runs on SimPy in a shipped study or as a reference: CoE serving with
prefetch (``serve_events``: copies as flows, HBM contention), bulk copies sharing links
(``FlowNetwork``: eight devices loading an expert at once, many times over), and the
kernel pipeline's SimPy reference (``pipeline_events``; the studies use the exact fast
evaluation). Each case is set up untimed (arch YAML, routes, the compiled plan: not SimPy);
the timed call is the model's simulation. Events are counted by SimPy's own
``Environment.step`` in a separate, untimed run; CPU seconds per event divided by raw
SimPy's is the overhead factor (issue 14's engine goal: <= 2x). Raw SimPy is timed again
right before each repeat of each model and the factor is the median of those pairs (the
machine's speed drifts between minutes); cpu s is the model's median.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import simpy
import simpy.core

_STEPS = [0]
_STEP = simpy.core.Environment.step


def _counting_step(self):
    _STEPS[0] += 1
    return _STEP(self)


def count_events(fn) -> int:
    """The SimPy events one ``fn()`` processes (the models are deterministic: every run the same)."""
    _STEPS[0] = 0
    simpy.core.Environment.step = _counting_step
    try:
        fn()
    finally:
        simpy.core.Environment.step = _STEP
    return _STEPS[0]


def cpu_seconds(fn) -> float:
    """CPU seconds of one ``fn()``, SimPy uninstrumented."""
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def raw_simpy(processes: int = 50, each: int = 2000) -> None:
    env = simpy.Environment()

    def proc(d):
        for _ in range(each):
            yield env.timeout(d)

    for i in range(processes):
        env.process(proc(1e-6 * (1 + i % 7)))
    env.run()


# Each case below is set up untimed and returns the call that is timed: the SimPy model's run.

def raw_case():
    return raw_simpy


def coe_prefetch():
    from rdusim.cache import RunCache, using
    from rdusim.config.arch import load_arch
    from rdusim.config.workload_coe import CachePolicy
    from rdusim.engine.coe.serving import ServingSetup, serve_events

    rng = np.random.default_rng(0)
    routes = [rng.integers(0, 150, size=8) for _ in range(200)]
    setup = ServingSetup(arch=load_arch(_ARCH / "sn40l.yaml"), devices=8, experts=150, slots=37,
                         expert_bytes=1.35e10, policy=CachePolicy.LRU, prefetch=True,
                         router_s=lambda n: 0.03, expert_s=lambda n: 0.06 + 0.01 * n, hottest=tuple(range(150)),
                         expert_hbm_fraction=lambda n: 0.6)

    def run():
        with using(RunCache()):
            serve_events(setup, routes)
    return run


def coe150_study():
    """Every SimPy serving (``events_table``: ``serve_events`` as columns) in the shipped
    coe150 study with prefetch on the SN40L at one prompt per batch (the worst case: fixed
    costs per batch and per copy): its 48 replications of 40 + 10 batches for both output
    lengths, and its expert-count sweep (not its footprint search, which serves batches of
    8). The study runs once untimed (SN40L only) to collect each serve's setup and routes and
    to fill the run's cache of router and expert timings (real engine work, not SimPy), so
    the timed call is the SimPy serving alone."""
    import yaml

    from rdusim.config.workload import load_workload
    from rdusim.engine.coe import serving
    from rdusim.studies import run_study

    raw = yaml.safe_load((_ROOT / "workloads" / "coe150.yaml").read_text())
    raw.pop("footprint", None)
    raw["platforms"] = {"sn40l": {"arch": str(_ARCH / "sn40l.yaml"), "tp": 8}}
    raw.update(batch_sizes=[1], cache={**raw["cache"], "prefetch": True})
    calls, events_table = [], serving.events_table

    def spy(setup, routes, *, trace=None):
        if all(len(prompts) == 1 for prompts in routes):     # (not the footprint search's, at 8)
            calls.append((setup, routes))
        return events_table(setup, routes, trace=trace)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "coe150_sn40l_prefetch.yaml"
        path.write_text(yaml.safe_dump(raw))
        serving.events_table = spy
        try:
            run_study(load_workload(path))
        finally:
            serving.events_table = events_table
    for setup, routes in calls:     # every time the serving asks for is computed now
        events_table(setup, routes)

    def run():
        for setup, routes in calls:
            events_table(setup, routes)
    return run


def flow_copies(copies: int = 300):
    from rdusim.config.arch import load_arch
    from rdusim.engine.coe.switching import copy_expert, switch_network

    arch = load_arch(_ARCH / "sn40l.yaml")

    def run():
        env = simpy.Environment()
        net, paths = switch_network(env, arch, 8)

        def driver():
            for i in range(copies):
                yield copy_expert(env, net, paths, 1.35e10, f"c{i}")
                if i % 3 == 0:          # overlapping copies: the rates are shared
                    copy_expert(env, net, paths, 1.35e10, f"o{i}")

        env.process(driver())
        env.run()
    return run


def pipeline_reference():
    """The distinct kernels of a Llama-2-7B decode step (what the run's cache would simulate),
    each simulated by the SimPy reference."""
    from rdusim.cache import content_key
    from rdusim.config.arch import load_arch
    from rdusim.config.deployment import Deployment
    from rdusim.config.model import load_model
    from rdusim.config.policy import FusionPolicy, LaunchMode
    from rdusim.engine.rdu.hardware import SocketHw
    from rdusim.engine.rdu.model_step import model_plan
    from rdusim.engine.rdu.pipeline_events import simulate_kernel_events
    from rdusim.graph.phase import Phase
    from rdusim.config.formats import arch_at

    arch = load_arch(_ARCH / "sn40l.yaml")
    model = load_model("llama2-7b")
    dep = Deployment.of(arch, model, tp=8, fusion=FusionPolicy.FUSED, launch=LaunchMode.HARDWARE)
    plan, _ = model_plan(dep, Phase.DECODE, 8, 512)
    hw = SocketHw.of(arch_at(arch, model.fmt.compute))
    distinct = {}
    for k in plan.kernels:
        view = hw.for_kernel(k)
        distinct.setdefault(content_key((view, plan.tiles, k)), (k, view))

    def run():
        for k, view in distinct.values():
            simulate_kernel_events(k, view, plan.tiles)
    return run


_ROOT = Path(__file__).resolve().parent.parent
_ARCH = _ROOT / "arch"
CASES = {"raw SimPy (timeouts only)": raw_case, "CoE serving with prefetch": coe_prefetch,
         "CoE serving in coe150 (SN40L, BS 1)": coe150_study,
         "bulk copies sharing links": flow_copies, "kernel pipeline (SimPy reference)": pipeline_reference}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    raw_events = count_events(raw_simpy)
    print(f"{'model':<36} {'events':>9} {'cpu s':>8} {'us/event':>9} {'x raw':>6}")
    for name, case in CASES.items():
        fn = case()
        events = count_events(fn)        # (also a warm-up run)
        # each repeat times raw SimPy right before the model, so a drift in the machine's speed
        # (up to a third between minutes here) cancels in the factor: the median of the pairs
        pairs = []
        for _ in range(args.repeat):
            raw_cpu = cpu_seconds(raw_simpy)
            cpu = cpu_seconds(fn)
            pairs.append((cpu, cpu / events / (raw_cpu / raw_events) if events else float("nan")))
        cpu = statistics.median(p[0] for p in pairs)
        factor = statistics.median(p[1] for p in pairs)
        per = cpu / events * 1e6 if events else float("nan")
        print(f"{name:<36} {events:>9} {cpu:>8.3f} {per:>9.2f} {factor:>6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
