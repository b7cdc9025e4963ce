"""Serving on --jobs and the step model's memoised decode runs: the same results to the bit."""

from __future__ import annotations

import numpy as np

from rdusim.config.workload import load_workload
from rdusim.parallel import using_jobs
from rdusim.studies import run_study

LLAMA = "workloads/serve_llama2_7b.yaml"
SMALL = [("requests", 120), ("warmup_requests", 10), ("replications", 2), ("rates_per_s", [4, 16]),
         ("sweep_requests", 60), ("capacity.traffic_per_s", 0)]


def test_serving_on_two_processes_equals_one_to_the_bit():
    with using_jobs(1):
        one = run_study(load_workload(LLAMA, SMALL))
    with using_jobs(2):
        two = run_study(load_workload(LLAMA, SMALL))
    assert one.metrics == two.metrics
    assert one.records == two.records
    assert one.metrics["serve.step_cache.misses"] > 0


def test_coe_and_adapter_serving_on_two_processes_equals_one_to_the_bit():
    """The CoE / adapters study runs each population on each platform as a part of its own."""
    sets = [("requests", 60), ("warmup_requests", 10), ("rates_per_s", [2]), ("sweep_requests", 40)]
    with using_jobs(1):
        one = run_study(load_workload("workloads/serve_adapters.yaml", sets))
    with using_jobs(2):
        two = run_study(load_workload("workloads/serve_adapters.yaml", sets))
    assert one.metrics == two.metrics and one.records == two.records and one.extra == two.extra
    assert {k.split(".")[2] for k in one.metrics if k.endswith(".requests_per_s")} == {"coe", "adapters"}


def test_decode_runs_equal_their_single_steps():
    """decode_run_s (vectorised, anchors memoised) is decode_s of each step of the run."""
    from rdusim.serve.platform import ServePlatform, with_scheduler
    from rdusim.cache import RunCache
    from rdusim.studies.serve import _model

    loaded = load_workload(LLAMA)
    cfg = _model(loaded.spec.model, loaded.file, "model")
    plat = ServePlatform.build("dgx_h100", with_scheduler(loaded.deployment("dgx_h100", cfg), loaded.spec.scheduler),
                               RunCache())
    costs = plat.setup().costs
    for batch, ctx, k in ((1, 1.0, 5), (7, 300.5, 400), (64, 1023.25, 3)):
        run = costs.decode_run_s(batch, ctx, k)
        assert np.allclose(run, [costs.decode_s(batch, ctx + i) for i in range(k)], rtol=1e-12, atol=0)


def test_prefix_caching_cuts_ttft_and_counts_its_hits():
    sets = [("requests", 150), ("warmup_requests", 20), ("replications", 1), ("platforms", {
        "dgx_h100": {"arch": "arch/dgx_h100.yaml", "tp": 8, "stack": "vllm"}}),
        ("prompt_tokens", {"distribution": "fixed", "value": 64})]
    on = run_study(load_workload("workloads/serve_prefix.yaml", sets)).metrics
    off = run_study(load_workload("workloads/serve_prefix.yaml", sets + [("scheduler.prefix_caching", False)])).metrics
    k = "serve.dgx_h100.continuous."
    assert on[k + "prefix_cache.hit_rate"] > 0.9
    assert on[k + "prefix_cache.saved_prefill_tokens"] == 16 * on[k + "prefix_cache.hit_blocks"]
    assert on[k + "ttft.mean_s"] < 0.8 * off[k + "ttft.mean_s"]
    assert k + "prefix_cache.hit_rate" not in off
    assert on[k + "completed"] == off[k + "completed"]


def test_decode_run_lists_equal_the_vectorised_curve_to_the_bit():
    """StepModel.decode_run_list (plain Python for short runs) gives the very floats of
    decode_run_s and start + its cumsum, cut after the first end at or past ``until``:
    contexts on and between anchors, runs across several anchors, long runs (numpy)."""
    from rdusim.cache import RunCache
    from rdusim.engine.stepper import LONG_RUN
    from rdusim.serve.platform import ServePlatform, with_scheduler
    from rdusim.studies.serve import _model

    loaded = load_workload(LLAMA)
    cfg = _model(loaded.spec.model, loaded.file, "model")
    plat = ServePlatform.build("dgx_h100", with_scheduler(loaded.deployment("dgx_h100", cfg), loaded.spec.scheduler),
                               RunCache())
    costs = plat.setup().costs
    b = plat.dep.execution.context_bucket_tokens
    rng = np.random.default_rng(7)
    cases = [(1, 1.0, 5), (3, float(b), 1), (3, float(b), 2 * b + 1), (5, b - 0.5, 3), (9, 2.0 * b - 1, b + 2),
             (2, 777.0, LONG_RUN), (2, 777.0, LONG_RUN + 1)]
    cases += [(int(rng.integers(1, 65)), float(rng.integers(16, 3000)) / int(rng.integers(1, 9)),
               int(rng.integers(1, 3 * LONG_RUN))) for _ in range(60)]
    for batch, ctx, k in cases:
        start = float(rng.uniform(0, 100))
        times = costs.decode_run_s(batch, ctx, k)
        ends = start + times.cumsum()
        for until in (np.inf, float(ends[len(ends) // 2]), float(ends[0]) - 1.0):
            got_t, got_e = costs.decode_run_list(batch, ctx, k, start, until)
            cut = min(k, int(ends.searchsorted(until, side="left")) + 1)
            assert got_t == times[:cut].tolist() and got_e == ends[:cut].tolist(), (batch, ctx, k, until)
