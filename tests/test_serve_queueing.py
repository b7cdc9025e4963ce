"""Serving under load: queueing sanity on fake step models (fixed step times), so the
scheduler logic is checked against queueing theory without engine time."""

import math

import numpy as np
import pytest

from rdusim.config.stack import PreemptionMode, SchedulerSpec
from rdusim.config.workload_serve import ArrivalProcess, LengthKind, LengthSpec, TooLong
from rdusim.serve.arrivals import Arrival, fit_context, synthetic
from rdusim.serve.continuous import run_continuous
from rdusim.serve.metrics import Slo, summarize
from rdusim.serve.server import ServerSetup
from rdusim.student_t import mean_ci
from rdusim.serve.static import run_static


class Fixed:
    """A step model with fixed times: prefill step ``p`` (any size), decode step ``d``."""

    def __init__(self, p: float, d: float):
        self.p, self.d = p, d

    def decode_s(self, batch, context):
        return self.d

    def decode_run_s(self, batch, context, steps):
        return np.full(steps, self.d)

    def packed_prefill_s(self, pieces):
        return self.p

    def mixed_s(self, pieces, decode_batch, decode_context):
        return self.p if pieces else self.d


def stream(rate, n, prompt=LengthSpec(value=10), output=LengthSpec(value=1), seed=1, process=ArrivalProcess.POISSON,
           cv=1.0):
    return synthetic(process, rate, cv, prompt, output, n, 0, np.random.default_rng(seed))


def test_md1_mean_wait_matches_pollaczek_khinchine():
    """Batch size 1, fixed service D, Poisson arrivals at rho = 0.5: Wq = rho D / (2 (1 - rho))."""
    lam, D = 5.0, 0.1
    arr = stream(lam, 20000)
    log = run_continuous(ServerSetup(Fixed(D, 0.01), SchedulerSpec(max_sequences=1), kv_blocks=100), arr)
    m = summarize(log, 500, Slo(1, 1), len(arr))
    wq = lam * D * D / (2 * (1 - lam * D))
    assert m["queue.mean_s"] == pytest.approx(wq, rel=0.05)
    assert m["ttft.mean_s"] == pytest.approx(wq + D, rel=0.05)


def test_littles_law_over_independent_replications():
    """L = lambda W: over 8 independent runs, the 95% interval of (lambda W - L) / L holds 0
    (L and W differ only by the requests in system at the window's ends) and is narrow."""
    gaps = []
    for seed in range(8):
        arr = stream(30.0, 2000, output=LengthSpec(LengthKind.UNIFORM, 1, 2, 40), seed=seed)
        log = run_continuous(ServerSetup(Fixed(0.02, 0.01), SchedulerSpec(max_sequences=16), kv_blocks=2000), arr)
        m = summarize(log, 200, Slo(1, 1), len(arr))
        gaps.append(m["little.rate_x_time"] / m["little.in_system_mean"] - 1)
    mean, lo, hi = mean_ci(gaps)
    assert lo <= 0 <= hi or abs(mean) < 0.01
    assert hi - lo < 0.05


@pytest.mark.parametrize("batch", [1, 8, 32])
def test_throughput_saturates_at_the_max_step_rate(batch):
    """Overloaded, the output rate approaches the batch over a request's steps: one
    prefill step (its first token) and out - 1 decode steps."""
    p, d, out = 1e-3, 0.01, 200
    arr = stream(1e4, 30 * batch, output=LengthSpec(value=out))
    log = run_continuous(ServerSetup(Fixed(p, d), SchedulerSpec(max_sequences=batch), kv_blocks=10**6), arr)
    m = summarize(log, 0, Slo(1, 1), len(arr))
    ceiling = batch * out / (p + (out - 1) * d)
    assert m["output_tokens_per_s"] <= ceiling * 1.001
    assert m["output_tokens_per_s"] >= 0.95 * ceiling


@pytest.mark.parametrize("mode", [PreemptionMode.RECOMPUTE, PreemptionMode.SWAP])
@pytest.mark.parametrize("chunked", [False, True])
def test_every_arrival_completes_or_is_counted_rejected(mode, chunked):
    """Small KV pool (preemption), prompts too long for the context, some too long for the pool."""
    arr = stream(50.0, 600, prompt=LengthSpec(LengthKind.UNIFORM, 1, 8, 700),
                 output=LengthSpec(LengthKind.UNIFORM, 1, 1, 300))
    fitted = fit_context(arr, 900, TooLong.REJECT)
    assert fitted.rejected > 0
    sched = SchedulerSpec(max_sequences=16, max_batched_tokens=512, kv_block_tokens=16, chunked_prefill=chunked,
                          preemption=mode)
    swaps = []
    setup = ServerSetup(Fixed(0.02, 0.01), sched, kv_blocks=50, swap_s=lambda n: swaps.append(n) or 1e-3 * n)
    log = run_continuous(setup, fitted.arrivals)
    m = summarize(log, 0, Slo(1, 1), len(arr))
    assert m["completed"] + m["rejected"] == len(arr)
    assert m["rejected_kv"] > 0 and log.preemptions > 0
    assert (len(swaps) > 0) == (mode == PreemptionMode.SWAP)
    for q in log.seqs:
        if q.finish_s == q.finish_s:
            assert q.arrival_s <= q.start_s <= q.first_token_s <= q.finish_s
            assert q.generated == q.output
        else:
            assert -(-(q.prompt + q.output) // 16) > 50 - setup.watermark_blocks


def test_static_batching_serves_everyone_and_pads():
    arr = [Arrival(0.0, 10, 5), Arrival(0.0, 10, 50), Arrival(0.0, 10, 3), Arrival(10.0, 10, 2)]
    log = run_static(ServerSetup(Fixed(0.1, 0.01), SchedulerSpec(static_batch_sequences=3), kv_blocks=100), arr)
    a, b, c, d = log.seqs
    assert a.first_token_s == b.first_token_s == c.first_token_s == pytest.approx(0.1)
    assert a.finish_s == pytest.approx(0.1 + 4 * 0.01) and b.finish_s == pytest.approx(0.1 + 49 * 0.01)
    assert d.start_s == 10.0 and d.finish_s == pytest.approx(10.11)


def test_gamma_arrivals_have_the_asked_rate_and_cv():
    gaps = np.diff([a.arrival_s for a in stream(4.0, 20000, process=ArrivalProcess.GAMMA, cv=3.0)])
    assert gaps.mean() == pytest.approx(0.25, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(3.0, rel=0.1)


def test_lengths_and_truncation_are_counted():
    arr = [Arrival(0.0, 5000, 100), Arrival(1.0, 100, 100)]
    t = fit_context(arr, 4096, TooLong.TRUNCATE)
    assert t.truncated == 1 and t.rejected == 0 and t.arrivals[0].prompt_tokens == 3996
    r = fit_context(arr, 4096, TooLong.REJECT)
    assert r.rejected == 1 and len(r.arrivals) == 1
    x = stream(1.0, 5000, prompt=LengthSpec(LengthKind.LOGNORMAL, 300, 10, 4000, 0.5))
    p = np.array([a.prompt_tokens for a in x])
    assert np.median(p) == pytest.approx(300, rel=0.05) and p.min() >= 10 and p.max() <= 4000


def test_same_seed_same_results():
    def once():
        arr = stream(30.0, 500, output=LengthSpec(LengthKind.UNIFORM, 1, 2, 40))
        log = run_continuous(ServerSetup(Fixed(0.02, 0.01), SchedulerSpec(max_sequences=8), kv_blocks=200), arr)
        return summarize(log, 50, Slo(0.2, 0.02), len(arr))
    a, b = once(), once()
    assert a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def test_capacity_is_below_saturation_and_meets_the_slo():
    """One server, fixed service 0.1 s (saturates at 10 req/s), SLO TTFT 0.5 s for 90%:
    the sustainable rate lies below 10 req/s; M/D/1 at rho = 0.5 meets the SLO easily."""
    from types import SimpleNamespace

    from rdusim.config.workload_serve import Batching, CapacitySpec, SloSpec
    from rdusim.serve.arrivals import Stream
    from rdusim.studies.serve import capacity

    setup = ServerSetup(Fixed(0.1, 0.01), SchedulerSpec(max_sequences=1), kv_blocks=100)
    plat = SimpleNamespace(serve=lambda mode, arr, warmup=0: run_continuous(setup, arr, warmup))
    streams = SimpleNamespace(at=lambda rate, n, point: Stream(tuple(stream(rate, n + 100, seed=point)), 0, 0))
    spec = SimpleNamespace(capacity=CapacitySpec(attainment=0.9, requests=800, iterations=7), warmup_requests=100,
                           slo=SloSpec(ttft_s=0.5, tpot_s=1.0))
    best = capacity(plat, Batching.CONTINUOUS, streams, spec, saturated_rate=10.0)
    assert 5.0 < best < 10.0
