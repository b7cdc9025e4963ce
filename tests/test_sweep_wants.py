"""A sweep keeps only its --metrics; the CoE study skips the footprint when none of its keys
is kept, and computes the same footprint as a full run when one is."""

from __future__ import annotations

from rdusim.config.workload import load_workload
from rdusim.config.yamlio import parse_set
from rdusim.studies import run_study
from rdusim.sweep.runner import choose_metrics, metric_selector

SETS = ["batches=6", "warmup_batches=2", "replications=2", "sweep_batches=4", "sweep_experts=[10]",
        "output_tokens=[20]", "batch_sizes=[8]"]


def _run(wants=None):
    return run_study(load_workload("tests/data/coe_small.yaml", [parse_set(s) for s in SETS]), wants=wants).metrics


def test_selector_is_the_metric_choice():
    keeps = metric_selector(("*.latency_s", "!coe.dgx_h100.*"))
    assert keeps("coe.sn40l.bs8.tok20.latency_s") and not keeps("coe.dgx_h100.bs8.tok20.latency_s")
    assert not keeps("coe.footprint.sn40l.nodes_for10")
    assert metric_selector(())("anything")
    m = {"a.latency_s": 1.0, "b.x": 2.0}
    assert choose_metrics(m, ("*.latency_s",)) == {"a.latency_s": 1.0}


def test_the_footprint_is_skipped_only_when_no_key_of_it_is_kept():
    full = _run()
    fp = {k: v for k, v in full.items() if k.startswith("coe.footprint.")}
    assert fp
    lean = _run(metric_selector(("*.latency_s",)))
    assert not any(k.startswith("coe.footprint.") for k in lean)
    assert {k: v for k, v in lean.items() if k.endswith(".latency_s")} == \
        {k: v for k, v in full.items() if k.endswith(".latency_s")}
    kept = _run(metric_selector(("coe.footprint.*",)))
    assert {k: v for k, v in kept.items() if k.startswith("coe.footprint.")} == fp


def test_expert_count_sweep_points_are_served_only_when_one_of_their_keys_is_kept():
    full = _run()
    sweep = {k: v for k, v in full.items() if ".experts10." in k}
    assert set(sweep) >= {"coe.sn40l.bs8.tok20.experts10.latency_s", "coe.sn40l.bs8.tok20.experts10.hit_rate"}
    scenario_only = _run(metric_selector(("coe.sn40l.bs8.tok20.latency_s", "coe.speedup.*")))
    assert not any(".experts" in k for k in scenario_only)
    assert {k: v for k, v in scenario_only.items() if k.startswith("coe.speedup.")} == \
        {k: v for k, v in full.items() if k.startswith("coe.speedup.")}
    one = _run(metric_selector(("coe.sn40l.bs8.tok20.experts10.hit_rate",)))
    assert {k: v for k, v in one.items() if ".experts" in k} == \
        {k: v for k, v in sweep.items() if k.startswith("coe.sn40l.")}


def test_a_caller_keeping_metrics_only_gets_every_fusion_metric_and_no_records():
    loaded = load_workload("tests/data/fusion_small.yaml")
    full = run_study(loaded)
    lean = run_study(loaded, wants=lambda key: True)
    assert full.records and not lean.records
    assert lean.metrics == full.metrics
