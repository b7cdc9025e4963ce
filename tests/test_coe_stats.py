"""95% confidence intervals of the CoE study: hand values and the 1/sqrt(n) shrink."""

import math

import pytest

from rdusim.config.workload import load_workload
from rdusim.studies import run_study
from rdusim.studies.coe_stats import half_width, mean_ci
from rdusim.student_t import t975


def test_mean_ci_by_hand():
    # [1, 3]: mean 2, s = sqrt(2), half-width = t(0.975, 1) * sqrt(2) / sqrt(2) = tan(0.475 pi) = 12.7062
    t1 = math.tan(0.475 * math.pi)
    assert mean_ci([1.0, 3.0]) == pytest.approx((2.0, 2.0 - t1, 2.0 + t1), rel=1e-12)
    assert mean_ci([5.0]) == (5.0, 5.0, 5.0)          # one replication: no spread known
    assert mean_ci([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)


@pytest.mark.parametrize("k", [2, 4, 8, 16, 32])
def test_ci_shrinks_as_one_over_sqrt_n(k):
    # values +-1 around 10, n = 2k of them: s^2 = n / (n - 1), so the half-width is
    # t(0.975, n-1) * sqrt(s^2 / n) = t(0.975, n-1) / sqrt(n - 1): by hand, n = 4 gives
    # 3.182 / sqrt(3) = 1.837, n = 16 gives 2.131 / sqrt(15) = 0.5502
    n = 2 * k
    mean, low, high = mean_ci([9.0, 11.0] * k)
    assert mean == 10.0
    assert (high - low) / 2 == pytest.approx(t975(n - 1) / math.sqrt(n - 1))
    if n == 4:
        assert (high - low) / 2 == pytest.approx(1.83739, abs=1e-5)
    if n == 16:
        assert (high - low) / 2 == pytest.approx(0.55034, abs=1e-5)


def test_the_interval_uses_the_exact_t_quantile():
    # 48 replications: t(0.975, 47) = 2.01174 (the table this replaced said 2.000)
    mean, low, high = mean_ci([9.0, 11.0] * 24)
    assert (high - low) / 2 == pytest.approx(2.0117405137 / math.sqrt(47), rel=1e-9)


def _study(reps):
    # 120 experts: more than HBM holds, so routing decides the switches and the latency varies
    return run_study(load_workload("tests/data/coe_small.yaml", [("replications", reps), ("experts.count", 120)])).metrics


def test_study_intervals_shrink_with_replications_and_contain_the_mean():
    key = "coe.speedup.sn40l_vs_dgx_h100.bs1.tok5.overall"
    few, many = _study(4), _study(16)
    for m in (few, many):
        assert m[key + ".ci95_low"] <= m[key] <= m[key + ".ci95_high"]
        assert m["coe.sn40l.bs4.tok5.latency_s.ci95_low"] <= m["coe.sn40l.bs4.tok5.latency_s"]
    # 4x the replications: the half-width falls by about sqrt(4) x t(3)/t(15) = 2 x 1.49 ~ 3;
    # sampled standard deviations vary, so only a clear shrink is asserted
    assert half_width(many, key) < 0.6 * half_width(few, key)
    assert many["coe.replications"] == 16


def test_one_replication_writes_no_interval():
    m = _study(1)
    assert not any(k.endswith(".ci95_low") for k in m)
