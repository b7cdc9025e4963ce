"""Serving energy (rdusim.serve_cost) charges what the run computed: a prefix-cache hit's
skipped prefill costs nothing, and a CoE run is its router's steps, its experts' steps,
its expert copies into HBM and static power."""

from __future__ import annotations

import dataclasses

import pytest

from rdusim.cache import RunCache
from rdusim.coe_cost import copy_j_per_byte
from rdusim.config.arch import load_arch
from rdusim.config.deployment import Deployment
from rdusim.config.model import load_model
from rdusim.config.policy import FusionPolicy
from rdusim.config.workload_coe import CachePolicy
from rdusim.config.workload_serve import Batching, CoePolicy
from rdusim.cost import decode_activity
from rdusim.energy import EnergyModel, Unit, step_activity
from rdusim.engine.stepper import StepModel
from rdusim.graph.phase import Phase
from rdusim.graph.tensor import DType
from rdusim.serve.arrivals import Arrival
from rdusim.serve.coe import CoeSetup, run_coe
from rdusim.serve.platform import ServePlatform
from rdusim.serve_cost import StepEnergy, coe_serve_energy, serve_energy


def _dep(path: str, prefix_caching: bool = False) -> Deployment:
    dep = Deployment.of(load_arch(path), load_model("llama2-7b"), tp=8, fusion=FusionPolicy.FUSED)
    sched = dataclasses.replace(dep.stack.scheduler, prefix_caching=prefix_caching)
    return dataclasses.replace(dep, stack=dataclasses.replace(dep.stack, scheduler=sched))


def _dynamic(got: dict, log, static_w: float, devices: int) -> float:
    """The run's dynamic joules: its total less static power over its span."""
    done = log.seqs
    span = max(q.finish_s for q in done) - min(q.arrival_s for q in done)
    return got["energy_j_per_request"] * len(done) - static_w * devices * span


def test_a_prefix_hit_saves_the_prefill_of_the_cached_tokens_and_nothing_else():
    """Two requests with one 512-token prefix, far apart: the second finds the prefix's
    32 blocks of 16 cached and computes only the rest of its prompt. Its energy drops by
    the work of a 512-token prefill beyond a step's fixed work (512 is a context anchor:
    d(prefill 512) - E_step); with caching off nothing is saved."""
    cache = RunCache()
    arr = [Arrival(0.0, 1024, 20, prefix=3, prefix_tokens=512), Arrival(100.0, 1024, 20, prefix=3, prefix_tokens=512)]
    runs = {}
    for on in (False, True):
        dep = _dep("arch/dgx_h100.yaml", on)
        assert dep.stack.scheduler.kv_block_tokens == 16 and dep.execution.context_bucket_tokens in (128, 256, 512)
        plat = ServePlatform.build("p", dep, cache)
        log = plat.serve(Batching.CONTINUOUS, arr)
        runs[on] = (log, serve_energy(plat, log))
    m = EnergyModel.of(load_arch("arch/dgx_h100.yaml"))
    (off_log, off), (on_log, on) = runs[False], runs[True]
    assert off_log.prefix_cache is None and on_log.prefix_cache.hit_runs == {32: 1}
    assert on_log.steps == off_log.steps
    steps = StepModel(_dep("arch/dgx_h100.yaml"), cache)
    d = lambda ph, b, s: m.dynamic_j(step_activity(steps.engine_step(ph, b, s), DType.BF16))  # noqa: E731
    bucket = steps.dep.execution.context_bucket_tokens
    e_step = 2 * d(Phase.DECODE, 1, bucket) - d(Phase.DECODE, 2, bucket)
    saved = 8 * (d(Phase.PREFILL, 1, 512) - e_step)
    assert saved > 0
    assert _dynamic(off, off_log, m.static_w, 8) - _dynamic(on, on_log, m.static_w, 8) == pytest.approx(saved, rel=1e-6)
    # off: the same as requests with no prefix at all
    plain = [dataclasses.replace(a, prefix=-1, prefix_tokens=0) for a in arr]
    plat = ServePlatform.build("p", _dep("arch/dgx_h100.yaml"), cache)
    log = plat.serve(Batching.CONTINUOUS, plain)
    assert serve_energy(plat, log) == off


def test_skipped_work_is_zero_for_no_tokens_and_grows_with_them():
    m = EnergyModel.of(load_arch("arch/sn40l.yaml"))
    t = StepEnergy(m, StepModel(_dep("arch/sn40l.yaml"), RunCache()))
    assert t.skipped_j(0) == 0.0
    assert 0 < t.skipped_j(256) < t.skipped_j(1024) < t.prefill_j(1024)


@pytest.mark.parametrize("path,source", [("arch/sn40l.yaml", Unit.SPILL), ("arch/dgx_h100.yaml", Unit.HOST_LINK)])
def test_a_lone_coe_request_is_a_router_prefill_an_expert_request_a_copy_and_static_power(path, source):
    """One request through a CoE node: the router's prefill of its prompt, one expert copied
    in (from DDR on the SN40L, over PCIe on a DGX), the expert's prefill and 39 decode
    steps at batch 1, static power over its time -- each from the engine's steps."""
    cache = RunCache()
    dep = _dep(path)
    steps = StepModel(dep, cache)
    setup = CoeSetup(router=steps, expert=steps, experts=4, slots=1, cache_policy=CachePolicy.LRU, prefetch=False,
                     switch_s=0.5, policy=CoePolicy.FIFO, max_wait_s=1.0, max_sequences=8, kv_block_tokens=16,
                     kv_blocks=100_000, model_bytes=13.5e9)
    log, ec = run_coe(setup, [Arrival(0.0, 300, 40, expert=2)])
    assert (log.router_steps, log.expert_steps, ec.misses) == (1, 40, 1)
    got = coe_serve_energy(steps, steps, 13.5e9, log, ec.misses)
    m = EnergyModel.of(load_arch(path))
    q = log.seqs[0]
    pre = m.dynamic_j(step_activity(steps.prefill(1, 300), DType.BF16))
    dec = m.dynamic_j(decode_activity(steps, 1, 300, 39))
    copy = 13.5e9 * (m.j_per_byte[source] + m.j_per_byte[Unit.HBM])
    assert copy_j_per_byte(m) == m.j_per_byte[source] + m.j_per_byte[Unit.HBM]
    want = 8 * (2 * pre + dec + m.static_w * (q.finish_s - q.arrival_s)) + copy
    assert got["energy_j_per_request"] == pytest.approx(want, rel=0.005)
    assert got["energy_j_per_token"] == pytest.approx(want / 40, rel=0.005)
    assert m.static_w < got["power_w_per_device"] < m.tdp_w
    # a second request to the resident expert: no copy
    log2, ec2 = run_coe(setup, [Arrival(0.0, 300, 40, expert=2), Arrival(50.0, 300, 40, expert=2)])
    assert ec2.misses == 1 and log2.router_steps == 2 and log2.expert_steps == 80
