"""The HBM expert cache: hit/miss sequences on given traces, by policy."""

import pytest
from hypothesis import given, strategies as st

from rdusim.config.workload_coe import CachePolicy
from rdusim.engine.coe.cache import ExpertCache


def run(cache, trace):
    return [(a.hit, a.evicted) for a in map(cache.access, trace)]


def test_lru_sequence_by_hand():
    c = ExpertCache(2, CachePolicy.LRU)
    # 1 miss, 2 miss, 1 hit, 3 miss evicts 2 (least recent), 2 miss evicts 1, 3 hit
    assert run(c, [1, 2, 1, 3, 2, 3]) == [(False, None), (False, None), (True, None),
                                          (False, 2), (False, 1), (True, None)]
    assert (c.hits, c.misses) == (2, 4)
    assert c.resident == {2, 3}


def test_lfu_keeps_the_frequent_expert():
    c = ExpertCache(2, CachePolicy.LFU)
    # 1 is used three times; 2 and 3 once: 3 evicts 2 (freq 1, older), 4 evicts 3
    assert run(c, [1, 1, 2, 1, 3, 4]) == [(False, None), (True, None), (False, None), (True, None),
                                          (False, 2), (False, 3)]
    assert 1 in c


def test_static_pins_the_hottest_and_rotates_one_slot():
    c = ExpertCache(3, CachePolicy.STATIC, hottest=[7, 8, 9, 10])
    assert c.resident == {7, 8}            # slots - 1 pinned, warm
    run(c, [1, 2, 3, 7, 8])
    assert {7, 8} <= c.resident and c.hits == 2 and c.misses == 3


def test_warm_start_counts_as_resident():
    c = ExpertCache(3, CachePolicy.LRU, warm=[0, 1, 2, 3])
    assert c.resident == {0, 1, 2}
    assert run(c, [2, 3]) == [(True, None), (False, 0)]


def test_cache_needs_a_slot():
    with pytest.raises(ValueError):
        ExpertCache(0, CachePolicy.LRU)


@given(st.integers(1, 6), st.lists(st.integers(0, 9), max_size=60),
       st.sampled_from(list(CachePolicy)))
def test_invariants(slots, trace, policy):
    c = ExpertCache(slots, policy, hottest=range(10))
    for e in trace:
        c.access(e)
        assert e in c                      # the accessed expert is resident afterwards
        assert len(c.resident) <= slots    # never over capacity
    assert c.hits + c.misses == len(trace)


@given(slots=st.integers(1, 6), warm=st.lists(st.integers(0, 12), max_size=8, unique=True),
       batches=st.lists(st.lists(st.integers(0, 12), max_size=8, unique=True), max_size=12),
       policy=st.sampled_from(list(CachePolicy)))
def test_hit_each_is_hit_one_by_one(slots, warm, batches, policy):
    """The closed forms' batch lookup and their no-replay test: equal to looking every expert
    up in turn, and a cache that holds every expert asked for at the start never misses."""
    one = ExpertCache(slots, policy, hottest=warm, warm=warm)
    each = ExpertCache(slots, policy, hottest=warm, warm=warm)
    holds = each.holds_all({e for b in batches for e in b})
    got = [each.hit_each(b) for b in batches]
    assert got == [[one.hit(e) for e in b] for b in batches]
    assert (each.hits, each.misses, each.resident) == (one.hits, one.misses, one.resident)
    assert not holds or each.misses == 0


@given(slots=st.integers(1, 6), warm=st.lists(st.integers(0, 12), max_size=8, unique=True),
       trace=st.lists(st.integers(0, 12), max_size=60), policy=st.sampled_from(list(CachePolicy)))
def test_hit_is_access(slots, warm, trace, policy):
    """The serving loop's lookup (LRU: its own fast path) does what :meth:`access` does:
    the same hits, the same residents after every lookup, the same counts."""
    fast = ExpertCache(slots, policy, hottest=warm, warm=warm)
    full = ExpertCache(slots, policy, hottest=warm, warm=warm)
    for e in trace:
        assert fast.hit(e) == full.access(e).hit
        assert list(fast._order) == list(full._order)     # residents, and their recency
    assert (fast.hits, fast.misses) == (full.hits, full.misses)
