"""Prefix caching: block conservation and no block served after another request evicted it,
on the cache alone (a model block pool) and through the continuous-batching scheduler."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rdusim.config.stack import PreemptionMode, SchedulerSpec
from rdusim.serve.arrivals import Arrival, with_prefixes
from rdusim.serve.continuous import _Continuous, run_continuous
from rdusim.serve.metrics import Slo, summarize
from rdusim.serve.prefix_cache import PrefixCache, chain
from rdusim.serve.server import ServerSetup
from tests.test_serve_queueing import Fixed, stream

TOTAL = 24


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 3), st.integers(0, 5), st.integers(0, 4)), max_size=60))
def test_the_cache_conserves_blocks_and_never_serves_an_evicted_block(ops):
    """A model pool over the cache: start a request (prefix p of k blocks, n private blocks)
    or finish one; free + evictable + in use = total always, and every block a request reads
    is held by it, never one evicted since it was computed."""
    pc = PrefixCache()
    available = TOTAL                     # free + evictable, as the scheduler counts
    running: list[tuple[list[int], int]] = []   # (shared hashes, private blocks)
    evicted: set[int] = set()
    for start, p, k, n in ops:
        if start:
            hashes = chain(p, k)
            hit = pc.match(hashes)
            revive = sum(1 for h in hashes[:hit] if h in pc.evictable)
            new = k - hit + n
            if available - new - revive < 0:
                continue
            assert not evicted & set(hashes[:hit])
            available -= pc.acquire(hashes[:hit])
            before = set(pc.evictable)
            available -= new
            pc.reclaim(available)
            evicted |= before - set(pc.evictable)
            shared = list(hashes[:hit])
            private = n
            for h in hashes[hit:]:          # computed now: registered (or kept private)
                if pc.register(h):
                    shared.append(h)
                    evicted.discard(h)
                else:
                    private += 1
            running.append((shared, private))
        elif running:
            shared, private = running.pop(p % len(running))
            available += private + pc.release(shared)
        in_use = sum(s for _, s in running) + len(pc.refs)
        free = available - len(pc.evictable)
        assert free >= 0
        assert free + len(pc.evictable) + in_use == TOTAL
        for shared, _ in running:
            assert all(pc.refs.get(h, 0) >= 1 for h in shared)


class Checked(_Continuous):
    """The scheduler, checked before every step: blocks conserved, no evicted block read."""

    def __init__(self, *a):
        super().__init__(*a)
        self.evicted: set[int] = set()
        self.checks = 0
        reclaim, register = self.pc.reclaim, self.pc.register

        def reclaim_(available):
            before = set(self.pc.evictable)
            reclaim(available)
            self.evicted |= before - set(self.pc.evictable)

        def register_(h):
            ok = register(h)
            if ok:
                self.evicted.discard(h)
            return ok

        self.pc.reclaim, self.pc.register = reclaim_, register_

    def swap_in(self):
        private = sum(q.blocks - len(q.shared) for q in self.running)
        assert self.free >= len(self.pc.evictable)
        assert (self.free - len(self.pc.evictable)) + len(self.pc.evictable) + len(self.pc.refs) + private \
            == self.s.kv_blocks
        for q in self.running:
            assert not self.evicted & set(q.shared)
            assert all(self.pc.refs[h] >= 1 for h in q.shared)
        self.checks += 1
        return super().swap_in()


def _setup(chunked: bool, preemption=PreemptionMode.RECOMPUTE, on=True, kv=60):
    sched = SchedulerSpec(max_sequences=8, max_batched_tokens=256, kv_block_tokens=16, chunked_prefill=chunked,
                          preemption=preemption, prefix_caching=on)
    return ServerSetup(Fixed(0.02, 0.01), sched, kv_blocks=kv)


@settings(max_examples=25, deadline=None)
@given(st.booleans(), st.sampled_from(list(PreemptionMode)), st.integers(0, 10_000), st.integers(1, 6))
def test_the_scheduler_conserves_blocks_and_never_reads_an_evicted_block(chunked, mode, seed, prefixes):
    rng = np.random.default_rng(seed)
    arr = with_prefixes(stream(30.0, 80, seed=seed), 0.7, 100, prefixes, rng)
    arr = [dataclasses.replace(a, output_tokens=int(rng.integers(1, 60))) for a in arr]
    sim = Checked(_setup(chunked, mode), arr)
    sim.run()
    assert sim.checks > 0
    assert all(q.finish_s == q.finish_s for q in sim.log.seqs)
    assert sim.free == sim.s.kv_blocks       # every request done: every block free or evictable
    assert not sim.pc.refs


def test_a_hit_skips_the_cached_tokens():
    """Two requests with one 100-token prefix (16-token blocks): the second finds 6 blocks
    (96 tokens) cached and prefills 4 + its own 20 tokens over a context of 96."""
    seen = []

    class Costs(Fixed):
        def packed_prefill_s(self, pieces):
            seen.append(list(pieces))
            return self.p

    a = [Arrival(0.0, 120, 2, prefix=7, prefix_tokens=100), Arrival(1.0, 120, 2, prefix=7, prefix_tokens=100)]
    log = run_continuous(ServerSetup(Costs(0.02, 0.01), _setup(False).scheduler, kv_blocks=60), a)
    assert seen == [[(120, 0)], [(24, 96)]]
    m = summarize(log, 0, Slo(1, 1), 2)
    assert m["prefix_cache.queried_blocks"] == 12 and m["prefix_cache.hit_blocks"] == 6
    assert m["prefix_cache.saved_prefill_tokens"] == 96 and m["prefix_cache.hit_rate"] == 0.5


def test_off_or_without_prefixes_the_run_is_unchanged():
    arr = stream(30.0, 200, seed=3)
    arr = [dataclasses.replace(a, output_tokens=1 + i % 40) for i, a in enumerate(arr)]
    off = summarize(run_continuous(_setup(True, on=False, kv=40), arr), 0, Slo(1, 1), len(arr))
    on = summarize(run_continuous(_setup(True, on=True, kv=40), arr), 0, Slo(1, 1), len(arr))
    assert {k: v for k, v in on.items() if not k.startswith("prefix_cache.")} == off
    assert "prefix_cache.hit_rate" not in off and on["prefix_cache.queried_blocks"] == 0


def test_a_plain_trace_names_prefixes(tmp_path):
    import pytest

    from rdusim.config.workload_serve import TraceFormat
    from rdusim.errors import InputError
    from rdusim.serve.arrivals import replay
    from rdusim.serve.tracefile import read_trace

    p = tmp_path / "t.csv"
    p.write_text("arrival_s,prompt_tokens,output_tokens,prefix_id,prefix_tokens\n0,300,5,3,256\n0.5,40,5,-1,0\n")
    arr = replay(read_trace(p, TraceFormat.PLAIN), 1.0, 10, 0)
    assert [(a.prefix, a.prefix_tokens) for a in arr] == [(3, 256), (-1, 0)]
    p.write_text("arrival_s,prompt_tokens,output_tokens,prefix_id,prefix_tokens\n0,300,5,3,400\n")
    with pytest.raises(InputError, match=r"row 2\.prefix_tokens"):
        read_trace(p, TraceFormat.PLAIN)
    p.write_text("arrival_s,prompt_tokens,output_tokens,prefix_id\n0,300,5,3\n")
    with pytest.raises(InputError, match="prefix_id,prefix_tokens"):
        read_trace(p, TraceFormat.PLAIN)
