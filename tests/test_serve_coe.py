"""CoE under load on fake step models: routing into per-expert queues, switching through
the expert cache, FIFO vs grouped scheduling with its bounded wait, model loads."""

import numpy as np
import pytest

from rdusim.config.workload_coe import CachePolicy
from rdusim.config.workload_serve import CoePolicy
from rdusim.serve.arrivals import Arrival
from rdusim.serve.coe import CoeSetup, run_coe


class Fixed:
    def __init__(self, p, d):
        self.p, self.d = p, d

    def decode_s(self, batch, context):
        return self.d

    def decode_run_s(self, batch, context, steps):
        return np.full(steps, self.d)

    def packed_prefill_s(self, pieces):
        return self.p


def setup(policy=CoePolicy.FIFO, slots=1, switch=1.0, wait=100.0, load=0.0, prefetch=False, hottest=()):
    return CoeSetup(router=Fixed(0.01, 0.0), expert=Fixed(0.02, 0.01), experts=4, slots=slots,
                    cache_policy=CachePolicy.LRU, prefetch=prefetch, switch_s=switch, policy=policy, max_wait_s=wait,
                    max_sequences=8, kv_block_tokens=16, kv_blocks=10_000, model_load_s=load, hottest=hottest)


def burst(experts):
    return [Arrival(0.0, 10, 3, e) for e in experts]


def test_fifo_hand_computed():
    """Two requests for expert 1 then one for 2, all at t=0, one slot, nothing resident:
    router 0.01; expert 1 switch 1 + prefill 0.02 + 2 decode steps; expert 2 the same."""
    log, cache = run_coe(setup(), burst([1, 1, 2]))
    a, b, c = log.seqs
    assert a.first_token_s == pytest.approx(0.01 + 1 + 0.02) == b.first_token_s
    assert a.finish_s == pytest.approx(0.01 + 1 + 0.02 + 0.02)
    assert c.finish_s == pytest.approx(a.finish_s + 1 + 0.02 + 0.02)
    assert (a.switches, c.switches) == (1, 1) and cache.misses == 2 and cache.hits == 0


def test_grouping_amortises_switches_and_the_wait_bound_holds():
    route = [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]
    arr = [Arrival(0.001 * i, 10, 3, e) for i, e in enumerate(route)]
    fifo, fc = run_coe(setup(CoePolicy.FIFO), arr)
    grouped, gc = run_coe(setup(CoePolicy.GROUPED), arr)
    assert gc.misses < fc.misses
    assert max(q.finish_s for q in grouped.seqs) < max(q.finish_s for q in fifo.seqs)
    # one old request of expert 0 behind six of expert 1: grouping serves expert 1 first,
    # unless the old request has waited longer than the bound
    arr = burst([0] + [1] * 6)
    unbounded, _ = run_coe(setup(CoePolicy.GROUPED), arr)
    bounded, _ = run_coe(setup(CoePolicy.GROUPED, wait=1e-3), arr)
    assert unbounded.seqs[0].finish_s > unbounded.seqs[1].finish_s
    assert bounded.seqs[0].finish_s < bounded.seqs[1].finish_s


def test_model_loads_paid_on_every_change_of_model():
    base, _ = run_coe(setup(switch=0.0, slots=4), burst([1, 2]))
    loads, _ = run_coe(setup(switch=0.0, slots=4, load=0.5), burst([1, 2]))
    # router, expert 1, expert 2: three loads before the second expert's batch ends
    assert loads.seqs[1].finish_s - base.seqs[1].finish_s == pytest.approx(1.5)


def test_everyone_served_and_resident_experts_hit():
    rng = np.random.default_rng(0)
    arr = [Arrival(float(t), 10, 3, int(e)) for t, e in zip(np.cumsum(rng.exponential(0.5, 300)),
                                                            rng.integers(0, 4, 300))]
    log, cache = run_coe(setup(slots=4, switch=0.5, hottest=(0, 1, 2, 3)), arr)
    assert all(q.finish_s == q.finish_s for q in log.seqs)
    assert cache.misses == 0          # every expert warm in the four slots
    log1, cache1 = run_coe(setup(slots=1, switch=0.5), arr)
    assert cache1.misses > 0 and max(q.finish_s for q in log1.seqs) > max(q.finish_s for q in log.seqs)


def test_prefetch_hides_the_next_switch():
    """Two slots: while expert 1's batch runs (prefill 0.02 + two decode steps 0.02), expert 2
    (next in line) is copied in, hiding 0.04 s of its 0.05 s switch."""
    arr = burst([1, 2])
    plain, _ = run_coe(setup(slots=2, switch=0.05), arr)
    pre, _ = run_coe(setup(slots=2, switch=0.05, prefetch=True), arr)
    assert pre.seqs[1].finish_s == pytest.approx(plain.seqs[1].finish_s - 0.04)
    assert pre.seqs[0].finish_s == plain.seqs[0].finish_s
