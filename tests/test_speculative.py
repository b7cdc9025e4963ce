"""Speculative decoding: the acceptance model, the k+1-token step, timing by hand, memory, errors."""

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdusim.cli import main
from rdusim.config.arch import load_arch
from rdusim.config.deployment import Deployment
from rdusim.config.model import load_model
from rdusim.config.speculative import DraftPlacement, SpeculativeSpec, expected_tokens
from rdusim.engine.speculative import simulate_speculative
from rdusim.cache import RunCache
from rdusim.engine.stepper import StepModel
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase
from rdusim.graph.tensor import TensorRole

CACHE = RunCache()   # shared by the tests of this module (content-keyed)
PROMPT, OUT = 128, 21


def _deps(arch="sn40l", target="llama2-13b", draft="llama2-7b", tp=8, draft_tp=None):
    a = load_arch(f"arch/{arch}.yaml")
    return Deployment.of(a, load_model(target), tp), Deployment.of(a, load_model(draft), draft_tp or tp)


def _run(p, k=4, arch="sn40l", **kw):
    t, d = _deps(arch)
    return simulate_speculative(t, d, SpeculativeSpec("llama2-7b", k, p, **kw), PROMPT, OUT, 1, CACHE)


# ---- the acceptance model ----
def test_expected_tokens_by_hand():
    assert expected_tokens(4, 0.0) == 1.0
    assert expected_tokens(4, 1.0) == 5.0
    assert expected_tokens(2, 0.5) == pytest.approx(1 + 0.5 + 0.25)
    assert expected_tokens(2, lengths=(0.2, 0.3, 0.5)) == pytest.approx(0.2 * 1 + 0.3 * 2 + 0.5 * 3)


@settings(max_examples=60, deadline=None)
@given(k=st.integers(1, 12), p=st.floats(0, 0.999))
def test_geometric_distribution_gives_the_closed_form(k, p):
    """P(i accepted) = p^i (1-p) for i < k, p^k for k: the same E as (1 - p^(k+1)) / (1 - p)."""
    lengths = tuple(p ** i * (1 - p) for i in range(k)) + (p ** k,)
    e = expected_tokens(k, p)
    assert 1.0 <= e <= k + 1
    assert expected_tokens(k, lengths=lengths) == pytest.approx(e, rel=1e-9)
    assert expected_tokens(k, min(1.0, p + 0.001)) >= e


# ---- the k+1-token step ----
def test_extend_graph_computes_new_tokens_over_the_cache():
    cfg = load_model("llama2-7b")
    g = build_model_graph(cfg, Phase.DECODE, 2, 100, tp=1, layers=1, new_tokens=5)
    ops = {o.name: o for o in g.ops}
    assert ops["embed"].inputs[0].shape == (2, 5)
    assert ops["lm_head"].outputs[0].shape == (2, 5, cfg.vocab_size)            # logits at every new position
    append = ops["L0.kv.append"]
    assert append.bytes_written == 2 * 2 * cfg.num_key_value_heads * 5 * cfg.head_dim * 2
    k = next(t for t in ops["L0.attn.score"].inputs if t.role == TensorRole.KV_CACHE)
    assert k.shape == (2, cfg.num_key_value_heads, 105, cfg.head_dim)
    assert ops["L0.attn.qkv"].attr("m") == 10


@pytest.mark.parametrize("arch", ["sn40l", "dgx_h100"])
def test_extend_of_one_token_is_the_decode_step_and_grows_with_tokens(arch):
    t, _ = _deps(arch)
    sm = StepModel(t, CACHE)
    assert sm.extend(1, 1, 256) is sm.engine_step(Phase.DECODE, 1, 256)
    times = [sm.extend(1, n, 256).time_s for n in (1, 2, 5, 9)]
    assert times == sorted(times)
    assert times[2] < 1.1 * times[0]          # memory-bound: 5 tokens cost about one


# ---- timing by hand ----
@pytest.mark.parametrize("arch", ["sn40l", "dgx_h100"])
def test_acceptance_zero_is_slower_than_plain_by_the_draft(arch):
    k = 3
    r = _run(0.0, k, arch)
    t, d = _deps(arch)
    assert r.tokens_per_step == 1 and r.steps == OUT - 1
    ctx = PROMPT + np.arange(OUT - 1)                       # one token per step: plain decode's contexts
    draft_by_hand = StepModel(d, CACHE).decode(1, (ctx[:, None] + np.arange(k)).ravel())[0].sum() / (OUT - 1)
    assert r.draft_s == pytest.approx(draft_by_hand, rel=1e-12)
    # verify steps are k+1-token steps at the same contexts, between those at the bracketing anchors
    sm, bucket = StepModel(t, CACHE), t.execution.context_bucket_tokens
    lo, hi = (sm.extend(1, k + 1, int(x)).time_s for x in (ctx[0] // bucket * bucket or 1, -(-ctx[-1] // bucket) * bucket))
    assert lo * (1 - 1e-12) <= r.verify_s <= hi * (1 + 1e-12)
    assert r.tpot_s == pytest.approx(r.draft_s + r.verify_s)
    draft_prefill = StepModel(d, CACHE).prefill(1, PROMPT).time_s
    extra = r.latency_s - r.plain.latency_s
    # the draft's cost (its prefill and k passes per token) plus a verify step a little dearer than a decode step
    assert extra == pytest.approx(draft_prefill + (OUT - 1) * (r.draft_s + r.verify_s - r.plain.tpot_s), rel=1e-9)
    assert 0 <= r.verify_s - r.plain.tpot_s < 0.1 * r.plain.tpot_s
    assert r.speedup < 1


@pytest.mark.parametrize("arch", ["sn40l", "dgx_h100"])
def test_acceptance_one_gives_k_plus_one_tokens_per_target_step(arch):
    k = 4
    r = _run(1.0, k, arch)
    assert r.tokens_per_step == k + 1 and r.steps == pytest.approx((OUT - 1) / (k + 1))
    assert r.tpot_s == pytest.approx(r.step_s / (k + 1))
    # per target step: k+1 tokens for one verify step; the bound as the draft gets free
    assert r.step_s / (k + 1) < r.plain.tpot_s
    assert (k + 1) * r.plain.tpot_s / r.verify_s > k      # approaches k+1 (the verify costs about one decode)


def test_fused_draft_loop_pays_one_launch_and_one_round_trip_under_ho():
    """Hand-computed on the SN40L's bottom-up stack: a draft pass's host work is its token's
    round trip over PCIe (one 4-byte id each way), the host waking and the host loop; under
    hardware orchestration each pass also has the schedule handed over (launch.software_s).
    A fused loop of k passes pays both once, not k times."""
    k = 4
    a, b = _run(0.5, k), _run(0.5, k, fused_draft_loop=True)
    _, d = _deps()
    arch, stack = d.arch, d.stack
    pcie = arch.links.pcie
    host = (2 * (pcie.latency_s + 4 / pcie.bandwidth_bytes_per_s) + stack.runtime.host_wakeup_s
            + stack.host.per_step_s + stack.host.per_sequence_step_s)
    assert StepModel(d, CACHE).host_s(1) == pytest.approx(host, rel=1e-12)
    launch = arch.launch.software_s
    assert a.draft_s - b.draft_s == pytest.approx((k - 1) * (host + launch), rel=1e-9)
    assert a.step_breakdown_s["host"] - b.step_breakdown_s["host"] == pytest.approx((k - 1) * host, rel=1e-9)
    assert a.step_breakdown_s["launch"] - b.step_breakdown_s["launch"] == pytest.approx((k - 1) * launch, rel=1e-9)
    assert sum(b.step_breakdown_s.values()) == pytest.approx(b.step_s)


@pytest.mark.parametrize("arch,launch", [("sn40l", "so"), ("dgx_h100", "graph")])
def test_fused_draft_loop_without_a_schedule_saves_only_the_round_trips(arch, launch):
    """Where every kernel is launched by itself (SO, or a GPU stream) a fused loop still pays
    each launch: it saves the k-1 host round trips only."""
    from rdusim.config.policy import LaunchMode

    k = 3
    a = load_arch(f"arch/{arch}.yaml")
    t, d = (Deployment.of(a, load_model(m), 8, launch=LaunchMode(launch)) for m in ("llama2-13b", "llama2-7b"))
    plain, fused = (simulate_speculative(t, d, SpeculativeSpec("llama2-7b", k, 0.5, fused_draft_loop=f), PROMPT,
                                         OUT, 1, CACHE) for f in (False, True))
    assert plain.draft_s - fused.draft_s == pytest.approx((k - 1) * StepModel(d, CACHE).host_s(1), rel=1e-9)
    assert plain.step_breakdown_s["launch"] == pytest.approx(fused.step_breakdown_s["launch"], rel=1e-12)


def test_verify_step_returns_k_plus_one_positions():
    """The verify step is given k+1 tokens and returns k+1 positions' outcome: its round trip
    carries (k+1) ids each way; with host sampling, (k+1) x vocab logits cross instead."""
    t, _ = _deps()
    sm, pcie, k = StepModel(t, CACHE), t.arch.links.pcie, 4
    ids = lambda n: pcie.latency_s + n * 4 / pcie.bandwidth_bytes_per_s     # noqa: E731
    assert sm.host_s(2, k + 1, k + 1) - sm.host_s(2) == pytest.approx(2 * (ids(2 * (k + 1)) - ids(2)), rel=1e-9)
    from rdusim.config.stack import load_stack
    host_sampling = dataclasses.replace(t, stack=load_stack("sambanova", [("runtime.sampling", "host")]))
    hs = StepModel(host_sampling, CACHE)
    logits = 2 * (k + 1) * t.model.vocab_size
    by_hand = (pcie.latency_s + ids(2 * (k + 1)) + logits * 2 / pcie.bandwidth_bytes_per_s
               + logits * host_sampling.stack.runtime.host_sample_s_per_logit + host_sampling.stack.runtime.host_wakeup_s
               + t.stack.host.per_step_s + 2 * t.stack.host.per_sequence_step_s)
    assert hs.host_s(2, k + 1, k + 1) == pytest.approx(by_hand, rel=1e-12)
    with pytest.raises(ValueError, match="samples on the host"):
        simulate_speculative(host_sampling, host_sampling, SpeculativeSpec("llama2-13b", k, 0.5, fused_draft_loop=True),
                             PROMPT, OUT, 1, CACHE)


def test_distribution_and_probability_agree_when_they_describe_the_same_acceptance():
    p, k = 0.7, 3
    lengths = tuple(p ** i * (1 - p) for i in range(k)) + (p ** k,)
    assert _run(p, k).latency_s == pytest.approx(_run(None, k, accepted_lengths=lengths).latency_s, rel=1e-9)


# ---- memory ----
def test_draft_that_does_not_fit_is_an_oom_result():
    a = load_arch("arch/dgx_h100.yaml")
    t, d = Deployment.of(a, load_model("llama2-70b"), 2), Deployment.of(a, load_model("llama2-13b"), 2)
    spec = SpeculativeSpec("llama2-13b", 4, 0.8)
    # two sequences of 2048 + 20 tokens: the two models' KV caches tip the shared GPUs over
    r = simulate_speculative(t, d, spec, 2048, 20, 2, CACHE)
    w70 = build_model_graph(t.model, Phase.DECODE, 1, 1, tp=2).param_bytes
    w13 = build_model_graph(d.model, Phase.DECODE, 1, 1, tp=2).param_bytes
    kv = 2 * (t.model.kv_cache_bytes_per_rank(2068, 2) + d.model.kv_cache_bytes_per_rank(2068, 2))
    usable = a.device.hbm.usable_bytes
    assert w70 + kv < usable < w70 + w13 + kv              # the target alone fits, with its draft it does not
    assert r.memory.weights_bytes == pytest.approx(w70 + w13) and r.memory.kv_bytes == pytest.approx(kv)
    assert r.oom and "83.90 GB usable" in r.oom and math.isnan(r.latency_s)
    sep = SpeculativeSpec("llama2-13b", 4, 0.8, placement=DraftPlacement.SEPARATE)
    d1 = Deployment.of(a, load_model("llama2-13b"), 1)
    ok = simulate_speculative(t, d1, sep, 2048, 20, 2, CACHE)
    assert ok.oom is None and ok.memory.weights_bytes == pytest.approx(w70)      # the target's GPUs are the fuller


# ---- workloads ----
SPEC_WL = "workloads/llama2_7b_chat.yaml"
BASE = ["--set", "model=llama2-13b", "--set", "speculative={draft: llama2-7b, lookahead: 2, acceptance: 0.6}",
        "--set", "platforms={sn40l: {arch: arch/sn40l.yaml, tp: 8}}"]


def test_speculative_model_run_end_to_end(run_workload):
    printed, m = run_workload(SPEC_WL, BASE)
    assert "Speculative decoding" in printed
    assert m["model.sn40l.spec.oom"] == 0
    assert m["model.sn40l.spec.tokens_per_step"] == pytest.approx(1 + 0.6 + 0.36)
    assert m["model.sn40l.spec.tpot_s"] == pytest.approx(m["model.sn40l.spec.step_s"] / (1 + 0.6 + 0.36))
    assert m["model.sn40l.spec.decode_tokens_per_s"] == pytest.approx(1 / m["model.sn40l.spec.tpot_s"])
    assert m["model.sn40l.spec.speedup"] == pytest.approx(m["model.sn40l.latency_s"] / m["model.sn40l.spec.latency_s"])


@pytest.mark.parametrize("sets, key", [
    (["speculative.acceptance=1.5"], "speculative.acceptance"),
    (["speculative.accepted_lengths=[0.5, 0.5]"], "speculative.acceptance"),        # both given
    (["speculative.acceptance=null", "speculative.accepted_lengths=[0.5, 0.5]"], "speculative.accepted_lengths"),
    (["speculative.acceptance=null", "speculative.accepted_lengths=[0.5, 0.4, 0.2]"], "speculative.accepted_lengths"),
    (["speculative.lookahead=0"], "speculative.lookahead"),
    (["speculative.draft=llama3-8b"], "speculative.draft"),                           # another vocabulary
    (["speculative.draft=nosuchmodel"], "speculative.draft"),
    (["speculative.draft_tp=16"], "speculative.draft_tp"),
    (["speculative.placement=separate"], "speculative.draft_tp"),                    # 8 + 8 > 8 sockets
    (["speculative.placement=elsewhere"], "speculative.placement"),
    (["speculative.draft_formats.compute=int8", "speculative.draft_formats.weight.dtype=int8"],
     "speculative.draft_formats.compute"),                                           # SN40L: bf16 only
])
def test_bad_speculative_input_exits_2(tmp_path, capsys, sets, key):
    args = ["run", SPEC_WL, "--out", str(tmp_path / "o")] + BASE
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert key in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
