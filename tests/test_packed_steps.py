"""Serving's packed prefill steps against the engine's own steps (rdusim.engine.packed_steps):
every platform, TP degree and prompt mix the engine can time, host work included. On the
kernel-stream engines (GPUs, TPU) the engine times any mix of prompts (a family's
``packed_step``: one variable-length attention launch per layer, rdusim.engine.varlen); the
SN40L's fused-layer pipelines are compiled for uniform batches, so there the rule is checked
against uniform batches, lone prompts and chunks only."""

import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rdusim.config.arch import load_arch
from rdusim.config.deployment import Deployment
from rdusim.config.model import load_model
from rdusim.engine.families import family
from rdusim.engine.knots import Cells, Knots
from rdusim.engine.stepper import StepModel
from rdusim.engine.varlen import mix_of
from rdusim.graph.phase import Phase

# (platform, TP degree): the SN40L, the DGX boxes, single GPUs and a TPU v5e slice
DEPLOYMENTS = tuple((p, tp) for p in ("sn40l", "dgx_h100", "dgx_a100", "tpu_v5e") for tp in (1, 2, 4, 8)) + (
    ("a100_80gb", 1), ("h100_sxm", 1), ("a100_40gb", 1))
MIXED = tuple(d for d in DEPLOYMENTS if d[0] != "sn40l")     # engines that time any mix of prompts
MODELS = ("llama2-7b", "mistral-7b")          # MHA; GQA with a sliding window
SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def steps(platform: str, tp: int, model: str = "llama2-7b") -> StepModel:
    """One step model per deployment for the module: knots found once are shared."""
    return StepModel(Deployment.of(load_arch(f"arch/{platform}.yaml"), load_model(model), tp))


def engine(sm: StepModel, batch: int, tokens: int) -> float:
    return sm.engine_step(Phase.PREFILL, batch, tokens).time_s


def bare(result) -> float:
    return result.time_s - result.breakdown_s["host"]


@SETTINGS
@given(dep=st.sampled_from(DEPLOYMENTS), tokens=st.integers(1, 4096))
def test_a_lone_prompt_costs_what_the_engine_says(dep, tokens):
    sm = steps(*dep)
    assert sm.packed_prefill_s([(tokens, 0)]) == pytest.approx(engine(sm, 1, tokens), rel=0.02)


@SETTINGS
@given(dep=st.sampled_from(DEPLOYMENTS), tokens=st.integers(1, 255))
def test_short_prompts_are_not_overcharged(dep, tokens):
    """Under 256 tokens the old interpolation charged up to 29% too much; the knots follow the
    engine's jumps to the token."""
    sm = steps(*dep)
    assert sm.packed_prefill_s([(tokens, 0)]) <= engine(sm, 1, tokens) * 1.01


@pytest.mark.parametrize("platform", ("sn40l", "dgx_h100", "dgx_a100", "tpu_v5e", "a100_80gb"))
@pytest.mark.parametrize("batch,tokens", [(8, 512), (2, 1024), (16, 256), (4, 64)])
def test_batches_at_powers_of_two_are_the_engines_step(platform, batch, tokens):
    sm = steps(platform, 1 if platform.startswith("a100") else 8)
    assert sm.packed_prefill_s([(tokens, 0)] * batch) == pytest.approx(engine(sm, batch, tokens), rel=1e-9)


@settings(SETTINGS, max_examples=60)
@given(dep=st.sampled_from(DEPLOYMENTS), batch=st.integers(2, 16), data=st.data())
def test_uniform_batches_against_the_engine(dep, batch, data):
    """Any b prompts of n tokens: the engine's (b, n) step. On the GPUs the attention kernel
    takes a whole extra wave when b x heads x ceil(n / 128) passes a multiple of the SMs (one
    sequence of 3410 tokens on 4 heads: 108 blocks, one wave of an A100; two of 1705: 112,
    two waves); the rule times the mix's attention with the engine's kernel cost function, so
    it takes the same waves (an interpolation between batches could not: 6% off)."""
    tokens = data.draw(st.integers(1, 4096 // batch))
    sm = steps(*dep)
    assert sm.packed_prefill_s([(tokens, 0)] * batch) == pytest.approx(engine(sm, batch, tokens), rel=0.02)


def _pieces(draw, cached: bool) -> list[tuple[int, int]]:
    """A step's prompts (a third of them under 256 tokens) and maybe a chunk over a cached context."""
    lengths, budget = [], 4096
    for _ in range(draw(st.integers(1, 12))):
        n = draw(st.integers(1, 255) | st.integers(1, 2048))
        if n > budget:
            break
        lengths.append(n)
        budget -= n
    pieces = [(n, 0) for n in lengths]
    if cached:
        pieces[0] = (pieces[0][0], draw(st.integers(2, 3000)))
    return pieces


@settings(SETTINGS, max_examples=60)
@given(dep=st.sampled_from(MIXED), model=st.sampled_from(MODELS), cached=st.booleans(), data=st.data())
def test_any_mix_of_prompts_against_the_engine(dep, model, cached, data):
    """Prompts of any lengths (short ones included), one of them maybe a later chunk of a
    longer prompt: the rule within 2% of the engine's step of that very mix (one
    variable-length attention launch per layer, the chunk's cached keys in it), the stack's
    host work on both."""
    sm = steps(*dep, model)
    pieces = _pieces(data.draw, cached)
    k = len(pieces)
    host = sm.host_s(k, sum(n for n, _ in pieces) / k)
    want = family(sm.dep.arch).packed_step(sm.dep, mix_of(pieces), host, sm.cache.get).time_s
    assert sm.packed_prefill_s(pieces) == pytest.approx(want, rel=0.02)


@SETTINGS
@given(dep=st.sampled_from(MIXED), model=st.sampled_from(MODELS), batch=st.integers(1, 16), data=st.data())
def test_the_engines_mix_of_equal_prompts_is_its_uniform_batch(dep, model, batch, data):
    """The engine's step of a packed mix is one prompt's kernels with the attention launches
    (and the per-sequence logits) given the mix: for b equal prompts it is the engine's own
    step of b sequences, built from the batch's graph, to the last bits."""
    tokens = data.draw(st.integers(1, 4096 // batch))
    sm = steps(*dep, model)
    want = sm.engine_step(Phase.PREFILL, batch, tokens)
    got = family(sm.dep.arch).packed_step(sm.dep, (((tokens, 0), batch),), want.breakdown_s["host"], sm.cache.get)
    assert got.time_s == pytest.approx(want.time_s, rel=1e-12)
    assert got.flops == pytest.approx(want.flops, rel=1e-12)


def test_the_sn40l_engine_times_uniform_batches_only():
    sm = steps("sn40l", 1)
    assert family(sm.dep.arch).packed_step(sm.dep, mix_of([(100, 0), (100, 0), (50, 0)]), 0.0, sm.cache.get) is None


@SETTINGS
@given(dep=st.sampled_from(DEPLOYMENTS), tokens=st.integers(16, 2048), context=st.integers(2, 3000))
def test_a_chunk_over_a_cached_context(dep, tokens, context):
    """A prompt's later chunk: what its tokens cost as a prompt, plus what the engine's step of
    those tokens over the cached context costs beyond the same step over one cached token."""
    sm = steps(*dep)
    want = engine(sm, 1, tokens) + bare(sm.extend(1, tokens, context)) - bare(sm.extend(1, tokens, 1))
    assert sm.packed_prefill_s([(tokens, context)]) == pytest.approx(want, rel=0.02)


def test_host_work_is_the_stacks_per_step_and_per_sequence():
    sm = steps("dgx_a100", 1)
    assert sm.host_s(8, 512) > sm.host_s(1, 512) > 0
    with_host = sm.packed_prefill_s([(512, 0)] * 8)
    assert with_host - sm.packed.packed_s([(512, 0)] * 8) == pytest.approx(sm.host_s(8, 512), rel=1e-12)
    assert with_host == pytest.approx(engine(sm, 8, 512), rel=1e-9)


def test_a_mix_lies_between_its_extremes():
    """A mix of 3 x 1000 + 1 x 1096 tokens costs about four 1024-token prompts (same tokens,
    almost the same attention) and less than one 4096-token prompt (quadratic attention)."""
    sm = steps("dgx_h100", 8)
    mix = sm.packed_prefill_s([(1000, 0)] * 3 + [(1096, 0)])
    assert mix == pytest.approx(engine(sm, 4, 1024), rel=0.02)
    assert mix < engine(sm, 1, 4096)


def test_knots_find_a_jump_to_the_unit():
    calls = []

    def f(x):
        calls.append(x)
        return 1.0 + 0.01 * x + (5.0 if x > 37 else 0.0)

    k = Knots(f, Cells(64, 4096))
    assert Cells(64, 2048, (4096,)).of(2100) == (2049, 2176) and Cells(64, 2048, (4096,)).of(5000) == (4097, 6144)
    assert [k(x) for x in (37, 38, 1, 64)] == [f(37), f(38), f(1), f(64)]
    assert k(20) == pytest.approx(f(20)) and k(50) == pytest.approx(f(50))
    assert len(set(calls)) < 20          # bisection, not every unit
