"""Serving metrics that must hold: throughput never 0 once requests finished and never above
the offered rate, time between tokens by hand, queue length and KV occupancy as time averages."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rdusim.config.stack import SchedulerSpec
from rdusim.config.workload_serve import ArrivalProcess, LengthKind, LengthSpec
from rdusim.serve.arrivals import Arrival, synthetic
from rdusim.serve.continuous import run_continuous
from rdusim.serve.metrics import Slo, replicated, summarize, weighted_percentile
from rdusim.serve.server import ServerSetup
from rdusim.serve.static import run_static
from test_serve_queueing import Fixed


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(process=st.sampled_from([ArrivalProcess.POISSON, ArrivalProcess.GAMMA]),
       rate=st.floats(1e-3, 1e20), cv=st.floats(0.05, 1e6), n=st.integers(1, 300),
       tokens=st.sampled_from([1, 16, 4096]), out=st.integers(1, 50), static=st.booleans(),
       warmup=st.integers(0, 20), seed=st.integers(0, 2**16))
def test_throughput_is_positive_and_never_above_the_offered_rate(process, rate, cv, n, tokens, out, static, warmup,
                                                                  seed):
    arr = synthetic(process, rate, cv, LengthSpec(LengthKind.UNIFORM, 1, 1, 64), LengthSpec(value=out), n, 0,
                    np.random.default_rng(seed))
    setup = ServerSetup(Fixed(0.02, 0.005), SchedulerSpec(max_sequences=8, max_batched_tokens=tokens), kv_blocks=10**5)
    log = (run_static if static else run_continuous)(setup, arr, warmup)
    m = summarize(log, warmup, Slo(1.0, 1.0), len(arr))
    assert all(math.isfinite(v) for v in m.values()), {k: v for k, v in m.items() if not math.isfinite(v)}
    if m["measured"]:
        assert m["requests_per_s"] > 0 and m["output_tokens_per_s"] > 0
        if "offered_rate_per_s" in m:
            assert m["requests_per_s"] <= m["offered_rate_per_s"] * (1 + 1e-12)


def test_the_issues_cases():
    """Every request at one instant (rate 1e20, gamma cv 1e6) printed 0.00 req/s; one token a
    step at 200 req/s printed 577 req/s."""
    burst = synthetic(ArrivalProcess.GAMMA, 1e20, 1e6, LengthSpec(value=16), LengthSpec(value=8), 500, 0,
                      np.random.default_rng(0))
    m = summarize(run_continuous(ServerSetup(Fixed(0.02, 0.005), SchedulerSpec(max_sequences=64), 10**5), burst, 50),
                  50, Slo(1, 1), 500)
    assert m["completed"] == 500 and m["requests_per_s"] > 0
    poisson = synthetic(ArrivalProcess.POISSON, 200.0, 1.0, LengthSpec(value=16), LengthSpec(value=8), 2000, 0,
                        np.random.default_rng(0))
    m = summarize(run_continuous(ServerSetup(Fixed(0.002, 0.001), SchedulerSpec(max_sequences=64,
                                                                                   max_batched_tokens=1), 10**5),
                                 poisson, 100), 100, Slo(1, 1), 2000)
    assert 0 < m["requests_per_s"] <= m["offered_rate_per_s"] < 210


def test_time_between_tokens_by_hand():
    """A decodes alone (steps of 10 ms) until B arrives; B's 50 ms prefill stalls A: one gap of
    60 ms among A's, every other gap of both 10 ms."""
    arr = (Arrival(0.0, 10, 40), Arrival(0.1, 10, 40))
    log = run_continuous(ServerSetup(Fixed(0.05, 0.01), SchedulerSpec(max_sequences=8), kv_blocks=1000), arr)
    m = summarize(log, 0, Slo(1, 1), 2)
    gaps, counts = log.tbt()
    assert counts.sum() == 2 * 39                       # every token after each one's first
    assert max(gaps) == pytest.approx(0.06) and sum(counts[np.isclose(gaps, 0.06)]) == 1
    # 78 gaps, one of 60 ms: the top 1.3% -- p90 10 ms, p99 the stall
    assert m["tbt.p50_s"] == pytest.approx(0.01) and m["tbt.p90_s"] == pytest.approx(0.01)
    assert m["tbt.p99_s"] == pytest.approx(0.06)
    assert m["tbt.mean_s"] == pytest.approx((77 * 0.01 + 0.06) / 78)


def test_static_batch_tokens_come_once_a_step():
    arr = tuple(Arrival(0.0, 10, o) for o in (5, 9))
    log = run_static(ServerSetup(Fixed(0.05, 0.01), SchedulerSpec(static_batch_sequences=8), kv_blocks=1000), arr)
    gaps, counts = log.tbt()
    assert counts.sum() == 4 + 8 and np.allclose(gaps, 0.01)


def test_weighted_percentile():
    v, w = np.array([3.0, 1.0, 2.0]), np.array([1.0, 1.0, 98.0])
    assert weighted_percentile(v, w, 50) == 2.0 and weighted_percentile(v, w, 99.5) == 3.0
    assert weighted_percentile(v, w, 0.5) == 1.0


def test_queue_and_occupancy_are_time_averages_with_idle_time():
    """Two requests 10 s apart, each a 1 s prefill holding one block: the pool of 100 blocks
    is 1% used for 2 s of the 11 s run, so the mean occupancy is 2/11 %, not the 1% every
    sample shows; nobody waits, so the mean queue is 0."""
    arr = (Arrival(0.0, 10, 1), Arrival(10.0, 10, 1))
    log = run_continuous(ServerSetup(Fixed(1.0, 0.01), SchedulerSpec(max_sequences=8), kv_blocks=100), arr)
    m = summarize(log, 0, Slo(5, 5), 2)
    assert m["kv_occupancy.mean"] == pytest.approx(2 * 1 / (100 * 11))
    assert m["queue_len.mean"] == 0.0


def test_queue_length_is_lambda_times_the_wait():
    """M/D/1 at rho = 0.5: the time-average queue length is lambda Wq (Little's law for the queue)."""
    lam, D = 5.0, 0.1
    arr = synthetic(ArrivalProcess.POISSON, lam, 1.0, LengthSpec(value=10), LengthSpec(value=1), 20000, 0,
                    np.random.default_rng(1))
    log = run_continuous(ServerSetup(Fixed(D, 0.01), SchedulerSpec(max_sequences=1), kv_blocks=100), arr)
    m = summarize(log, 0, Slo(1, 1), len(arr))
    assert m["queue_len.mean"] == pytest.approx(lam * lam * D * D / (2 * (1 - lam * D)), rel=0.06)


def test_replicated_intervals():
    runs = [{"ttft.p99_s": x, "requests_per_s": 10 + x} for x in (1.0, 2.0, 3.0)]
    m = replicated(runs)
    assert m["ttft.p99_s"] == 2.0 and m["requests_per_s"] == 11.0     # others: the first replication's
    assert m["ttft.p99_ci_lo_s"] == pytest.approx(2.0 - 4.302652729749464 / math.sqrt(3))
    assert "ttft.p99_ci_lo_s" not in replicated(runs[:1])
