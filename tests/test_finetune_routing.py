"""MoE fine-tuning's expert load (rdusim.finetune.expert_load): the routing model of the
experts-as-individuals study where the workload gives one, the expected load otherwise;
uniform routing changes nothing, dense ignores routing, a skewed law loads the top expert more."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rdusim.cli import main
from rdusim.config.model import load_model
from rdusim.config.offload import RoutingDist
from rdusim.config.workload_finetune import MoeMode
from rdusim.finetune.expert_load import FinetuneRouting, expert_load, label, trace_shares, zipf_shares
from rdusim.graph.decoder import profile_counts
from rdusim.graph.training import training_build
from rdusim.studies.finetune import moe_model

WORKLOAD = "workloads/finetune_mixtral_qlora.yaml"
TINY = ["--set", "datasets={tiny: {queries: 1000, median_tokens: 48, sigma: 0.5, max_tokens: 128}}",
        "--set", "platforms={h100: {arch: arch/h100_sxm.yaml, tp: 1, stack: hf_peft}}",
        "--set", "quadrature_points=2", "--set", "max_batch=16"]


def _expert_flops(cfg, batch=2, seq=128):
    from dataclasses import replace
    ops, _ = training_build(replace(cfg, num_hidden_layers=1), batch, seq)
    by = {}
    for op in ops:
        if ".moe.e" in op.name and op.attr("pass") is None:
            e = op.name.split(".moe.e")[1].split(".")[0]
            by[int(e)] = by.get(int(e), 0.0) + op.flops
    return by


def test_uniform_routing_is_the_expected_load_and_dense_ignores_routing():
    m = load_model("mixtral-8x7b")
    uni = FinetuneRouting(RoutingDist.UNIFORM)
    assert expert_load(uni, 8, 2, 0) is None and expert_load(None, 8, 2, 0) is None
    zipf = expert_load(FinetuneRouting(RoutingDist.ZIPF, skew=1.2), 8, 2, 0)
    assert moe_model(m, MoeMode.SPARSE, None) is m
    assert moe_model(m, MoeMode.DENSE, zipf) == moe_model(m, MoeMode.DENSE)       # every expert, every token
    assert "expected load" in label(None, False) and "expected load" in label(uni, False)
    assert "zipf" in label(FinetuneRouting(RoutingDist.ZIPF, skew=1.2), False) and "every" in label(uni, True)


def test_zipf_shares_by_hand_and_in_the_graph():
    """k = 2 of 8 experts: P(i in top 2) = p_i + sum_{j != i} p_j p_i / (1 - p_j) (the Gumbel
    top-k draw), share = that / 2; the graph gives the top expert that many tokens."""
    p = 1.0 / np.arange(1, 9) ** 1.2
    p /= p.sum()
    incl = np.array([p[i] + sum(p[j] * p[i] / (1 - p[j]) for j in range(8) if j != i) for i in range(8)])
    got = zipf_shares(8, 2, 1.2, seed=0)
    assert got == pytest.approx(tuple(incl / 2), abs=0.006)
    assert sum(got) == pytest.approx(1.0) and list(got) == sorted(got, reverse=True)
    m = load_model("mixtral-8x7b")
    skewed = _expert_flops(moe_model(m, MoeMode.SPARSE, got))
    even = _expert_flops(m)
    assert sum(skewed.values()) == pytest.approx(sum(even.values()), rel=1e-9)      # the same assignments
    assert max(skewed.values()) > 1.5 * max(even.values())
    assert profile_counts(got, 512, 256) == sorted(profile_counts(got, 512, 256), reverse=True)
    assert sum(profile_counts(got, 512, 256)) == 512 and max(profile_counts(got, 512, 256)) <= 256


def test_trace_shares_sorted_and_averaged():
    trace = np.array([[[0, 1], [2, 3]], [[0, 2], [2, 1]], [[0, 3], [2, 0]]])   # (tokens 3, layers 2, k 2)
    # layer 0: e0 x3, e1, e2, e3 x1 -> 3,1,1,1 ; layer 1: e2 x3, e0, e1, e3 -> 3,1,1,1
    assert trace_shares(trace, 4) == pytest.approx((0.5, 1 / 6, 1 / 6, 1 / 6))


def test_cli_routing_uniform_changes_nothing_and_results_say_which_load(tmp_path):
    base, uni, zipf = tmp_path / "b", tmp_path / "u", tmp_path / "z"
    assert main(["run", WORKLOAD, "--out", str(base), "--jobs", "1", *TINY]) == 0
    assert main(["run", WORKLOAD, "--out", str(uni), "--jobs", "1", *TINY,
                 "--set", "routing={distribution: uniform}"]) == 0
    assert main(["run", WORKLOAD, "--out", str(zipf), "--jobs", "1", *TINY,
                 "--set", "routing={distribution: zipf, skew: 1.5}"]) == 0
    b, u, z = (json.loads((d / "results.json").read_text()) for d in (base, uni, zipf))
    assert b["metrics"] == u["metrics"]
    assert "expected load" in b["extra"]["expert_load"]["sparse"] and "zipf" in z["extra"]["expert_load"]["sparse"]
    k = "finetune.h100.tiny"
    assert z["metrics"][f"{k}.dense.step_s"] == b["metrics"][f"{k}.dense.step_s"]
    assert z["metrics"][f"{k}.sparse.step_s"] != b["metrics"][f"{k}.sparse.step_s"]


def test_bad_routing_exits_2(tmp_path, capsys):
    assert main(["run", WORKLOAD, "--out", str(tmp_path), *TINY, "--set", "routing={distribution: trace}"]) == 2
    assert "routing" in capsys.readouterr().err
