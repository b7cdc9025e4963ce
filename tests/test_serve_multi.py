"""Continuous batching across CoE experts and LoRA adapters (rdusim.serve.multi), the
adapters' shapes and batched kernel (rdusim.serve.adapters), on fake step costs where the
scheduler logic is checked."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rdusim.config.arch import load_arch
from rdusim.config.model import load_model
from rdusim.config.workload_coe import CachePolicy
from rdusim.serve.adapters import AdapterCosts, BatchedAdapterKernel, ExpertCosts, adapter_shape
from rdusim.serve.arrivals import Arrival
from rdusim.serve.metrics import Slo, summarize
from rdusim.serve.multi import MultiSetup, run_multi
from rdusim.student_t import mean_ci


class Groups:
    """Fixed step costs: a prefill segment ``p`` per model, a decode segment ``d`` per model."""

    def __init__(self, p=0.01, d=0.002):
        self.p, self.d = p, d

    def prefill_s(self, prompts):
        return self.p * len(prompts)

    def decode_run_s(self, groups, steps):
        return np.full(steps, self.d * len(groups))


def setup(**kw):
    base = dict(costs=Groups(), slots=2, cache_policy=CachePolicy.LRU, switch_s=0.5, per_step=8, max_sequences=8,
                max_batched_tokens=4096, kv_block_tokens=16, kv_blocks=10_000)
    base.update(kw)
    return MultiSetup(**base)


def arrivals(spec):
    """(time, model, output tokens) -> arrivals with 10-token prompts."""
    return [Arrival(t, 10, out, e) for t, e, out in spec]


# ---- adapters' shapes and the batched kernel, by hand ----

def test_adapter_bytes_and_flops_by_hand():
    """Llama-2-7B (hidden 4096, 32 layers, MHA), rank 16 on q_proj and v_proj, one rank:
    per layer A is (4096, 2 x 16) side by side, B_q and B_v (16, 4096): 262,144 bf16 values
    = 524,288 bytes; 32 layers: 16,777,216 bytes. FLOPs per token per layer: A 2*4096*32 =
    262,144, Bs 2 * 2*16*4096 = 262,144, the add 2*4096 = 8,192: 532,480; 32 layers: 17,039,360."""
    s = adapter_shape(load_model("llama2-7b"), 1, 16, ("q_proj", "v_proj"))
    assert s.bytes_per_rank == 16_777_216
    assert s.flops_per_token == 17_039_360
    assert s.gemms == 3 * 32
    # TP8: q/v are column-parallel, so A stays whole (4096, 32) and each B is (16, 512)
    s8 = adapter_shape(load_model("llama2-7b"), 8, 16, ("q_proj", "v_proj"))
    assert s8.bytes_per_rank == 32 * 2 * (4096 * 32 + 2 * 16 * 512)


def test_batched_kernel_roofline_by_hand():
    """Tokens 3 and 5 of two adapters: FLOPs 8 x per-token; bytes both adapters' weights once
    plus 8 tokens' activations; time the larger of the two at the device's rate and bandwidth."""
    arch = load_arch("arch/dgx_h100.yaml")
    shape = adapter_shape(load_model("llama2-7b"), 1, 16, ("q_proj", "v_proj"))
    k = BatchedAdapterKernel.on(arch, shape)
    assert k.flops([3, 5]) == 8 * 17_039_360
    by_hand = 2 * 16_777_216 + 8 * shape.activation_bytes_per_token
    assert k.bytes([3, 5]) == by_hand
    assert k.time_s([3, 5]) == pytest.approx(max(8 * 17_039_360 / 989e12, by_hand / k.hbm_bytes_per_s))
    # heterogeneity costs weight reads: 8 tokens of one adapter read one adapter's weights
    assert k.time_s([8]) < k.time_s([1] * 8)


def test_step_costs_sum_their_parts():
    class Base:
        def packed_prefill_s(self, pieces):
            return 0.1 * len(pieces)

        def decode_run_s(self, batch, ctx, steps):
            return np.full(steps, 0.01 * batch + ctx * 1e-6)

    class Kernel:
        def time_s(self, tokens):
            return 1e-3 * len(list(tokens))

    a = AdapterCosts(Base(), Kernel())
    assert a.prefill_s({1: [5, 6], 2: [7]}) == pytest.approx(0.3 + 2e-3)
    assert a.decode_run_s({1: (2, 100.0), 2: (1, 400.0)}, 3) == pytest.approx(np.full(3, 0.03 + 200e-6 + 2e-3))
    e = ExpertCosts(Base())
    assert e.decode_run_s({1: (2, 100.0), 2: (1, 400.0)}, 2) == pytest.approx(np.full(2, 0.02 + 100e-6 + 0.01 + 400e-6))


# ---- the scheduler ----

def test_adapter_cache_hits_and_misses():
    """Two slots, LRU, one request at a time: models 0, 1, 0, 2, 1 -> miss, miss, hit, miss
    (evicts 1, the least recent), miss (1 was evicted). Each miss costs one switch."""
    arr = arrivals([(i * 10.0, e, 2) for i, e in enumerate([0, 1, 0, 2, 1])])
    log, cache, check = run_multi(setup(), arr)
    assert (cache.hits, cache.misses) == (1, 4)
    assert [q.switches for q in log.seqs] == [1, 1, 0, 1, 1]
    assert check.violations == 0
    # a miss's request waits its switch: TTFT = switch + prefill; a hit's only the prefill
    assert log.seqs[0].first_token_s - log.seqs[0].arrival_s == pytest.approx(0.51)
    assert log.seqs[2].first_token_s - log.seqs[2].arrival_s == pytest.approx(0.01)


def test_models_per_step_bounds_a_step():
    """per_step 1: model 1's request waits for model 0's to finish (no overtaking);
    per_step 2: both run in one step, whose decode segments add up: model 1's first token
    comes far earlier, the last token at the same time (the same segments, interleaved)."""
    arr = arrivals([(0.0, 0, 50), (0.0, 1, 50)])
    one, _, _ = run_multi(setup(per_step=1, switch_s=0.0), arr)
    two, _, _ = run_multi(setup(per_step=2, switch_s=0.0), arr)
    assert one.seqs[1].first_token_s >= one.seqs[0].finish_s
    assert two.seqs[1].first_token_s == two.seqs[0].first_token_s
    assert two.seqs[1].first_token_s < one.seqs[1].first_token_s
    assert two.seqs[1].finish_s == pytest.approx(one.seqs[1].finish_s)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 5), st.integers(0, 6), st.integers(1, 30)), min_size=1, max_size=40),
       st.integers(1, 4), st.integers(1, 6), st.sampled_from(list(CachePolicy)), st.integers(1, 8))
def test_never_runs_a_model_that_is_not_resident(spec, slots, per_step, policy, max_seq):
    """Whatever the arrivals, slots, models per step and cache policy: every step ran resident
    models only, every request finished, and none was switched more than once."""
    arr = arrivals(sorted(spec))
    log, cache, check = run_multi(setup(slots=slots, per_step=per_step, cache_policy=policy,
                                        max_sequences=max_seq, hottest=tuple(range(7))), arr)
    assert check.violations == 0 and check.steps_checked > 0
    assert all(q.finish_s == q.finish_s and q.generated == q.output for q in log.seqs)
    assert all(q.switches <= 1 for q in log.seqs)
    assert cache.hits + cache.misses == len(arr)


def test_littles_law():
    """L = lambda W over independent runs of CoE-style traffic (router step included)."""
    class Router:
        def packed_prefill_s(self, pieces):
            return 0.002

    gaps = []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        t = np.cumsum(rng.exponential(1 / 20.0, 1500))
        arr = [Arrival(float(x), 10, int(o), int(e)) for x, o, e in
               zip(t, rng.integers(1, 40, len(t)), rng.integers(0, 6, len(t)))]
        log, _, _ = run_multi(setup(slots=3, switch_s=0.02, router=Router(), session_s=0.001), arr)
        m = summarize(log, 100, Slo(1, 1), len(arr))
        gaps.append(m["little.rate_x_time"] / m["little.in_system_mean"] - 1)
    mean, lo, hi = mean_ci(gaps)
    assert lo <= 0 <= hi or abs(mean) < 0.01
    assert hi - lo < 0.05


def test_the_default_is_run_to_completion(tmp_path):
    """With coe.batching left out the CoE runs as before (rdusim.serve.coe): the same
    metrics as coe.batching=run_to_completion, and others with continuous."""
    from rdusim.config.workload import load_workload
    from rdusim.studies.serve_coe import run_study

    over = [("requests", 30), ("warmup_requests", 5), ("rates_per_s", [1.0]), ("sweep_requests", 20),
            ("replications", 1), ("capacity.traffic_per_s", 0)]
    def metrics(extra):
        res = run_study(load_workload("workloads/serve_coe150.yaml", over + extra))
        return {r.key(): r.value for r in res.rows}
    default = metrics([])
    assert default == metrics([("coe.batching", "run_to_completion")])
    assert default != metrics([("coe.batching", "continuous")])


@pytest.mark.parametrize("sets, key", [
    (["adapters.rank=0"], "adapters.rank"),
    (["adapters.targets=[foo]"], "adapters.targets"),
    (["adapters.targets=[router]"], "adapters.targets"),      # a dense model has no router to adapt
    (["scheduler.models_per_step=0"], "scheduler.models_per_step"),
    (["coe.batching=sometimes"], "coe.batching"),
])
def test_bad_input_exits_2_naming_the_key(tmp_path, capsys, sets, key):
    from rdusim.cli import main

    args = ["run", "workloads/serve_adapters.yaml", "--out", str(tmp_path / "o")]
    for s in sets + ["requests=10", "warmup_requests=2", "sweep_requests=5", "replications=1"]:
        args += ["--set", s]
    assert main(args) == 2
    assert key in capsys.readouterr().err
    assert not (tmp_path / "o" / "results.json").exists()
