"""Roofline mode (execution.ideal): a decode step computed by hand -- weights and KV cache
over HBM bandwidth, matmul FLOPs over peak, the TP all-reduces over the ideal fabric --
equals the simulator's to 1e-9 on every family (models, batches, contexts, slices), and the
switch idealises every efficiency and time cost."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdusim.cache import RunCache
from rdusim.config.arch import load_arch
from rdusim.config.deployment import Deployment
from rdusim.config.execution import ExecutionConfig
from rdusim.config.machine import idealised
from rdusim.config.model import load_model
from rdusim.config.policy import FusionPolicy
from rdusim.engine.stepper import StepModel

MODELS = {n: load_model(n) for n in ("llama2-7b", "llama3-8b", "llama2-13b")}
# (arch file, slice topology or None, tp)
MACHINES = [("arch/sn40l.yaml", None, 1), ("arch/dgx_h100.yaml", None, 1), ("arch/dgx_a100.yaml", None, 1),
            ("arch/rtx3090.yaml", None, 1), ("arch/h100_pcie.yaml", None, 1),
            ("arch/tpu_v5e.yaml", "1x1", 1), ("arch/tpu_v5e.yaml", "4x4", 2), ("arch/tpu_v5e.yaml", "4x4", 4),
            ("arch/tpu_v5e.yaml", "8x8", 8), ("arch/tpu_v5e.yaml", "4x4", 16)]
ARCHS = {}


def _arch(path, topology):
    key = (path, topology)
    if key not in ARCHS:
        ARCHS[key] = load_arch(path, [("slice.topology", topology)] if topology else [])
    return ARCHS[key]


def _ring_s(op, n, closed, m, port):
    """A ring along one mesh axis, bandwidth term only (rdusim.engine.tpu.collectives)."""
    sent = (2 * (n - 1) / n if op == "ar" else (n - 1) / n) * m
    return sent / (2 * port if closed else port)


def _tpu_collective_s(arch, op, tp, m):
    port = arch.ici.bandwidth_bytes_per_s            # efficiency 1 in roofline mode
    axes = arch.mesh_axes(tp)
    if len(axes) == 1:
        (n, closed), = axes
        return _ring_s(op, n, closed, m, port)
    (a, ca), (b, cb) = axes
    assert (a, ca) == (b, cb)                          # the square slices drawn here: the halves are alike
    half = m / 2
    if op == "ar":
        return _ring_s("ag", a, ca, half, port) + _ring_s("ar", b, cb, half / a, port) + _ring_s("ag", a, ca, half, port)
    return _ring_s("ag", a, ca, half / b, port) + _ring_s("ag", b, cb, half, port)


def hand_decode_step_s(cfg, arch, tp: int, batch: int, context: int) -> float:
    """One decode step of a Llama-family model on one of ``tp`` devices, by hand."""
    h, inter, layers, vocab = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.vocab_size
    d = h // cfg.num_attention_heads
    q_heads, kv_heads = cfg.num_attention_heads // tp, max(1, cfg.num_key_value_heads // tp)
    linear = h * (q_heads + 2 * kv_heads) * d + q_heads * d * h + h * 2 * inter // tp + inter // tp * h
    head = h * vocab // tp
    weights = 2 * (layers * (linear + 2 * h) + h + head)          # bf16; norms replicated
    rows = 2 * batch * h                                          # the embedding rows gathered
    kv = layers * 2 * batch * kv_heads * d * 2 * ((context + 1) + 1)   # read (with the new token) + append
    flops = 2 * batch * (layers * linear + head) + layers * 4 * batch * q_heads * d * (context + 1)
    roof = max(flops / arch.native_rate(cfg.torch_dtype), (weights + rows + kv) / arch.device_hbm.bandwidth_bytes_per_s)
    if tp == 1:
        return roof
    message = 2 * batch * h
    collectives = (2 * layers + 1) * _tpu_collective_s(arch, "ar", tp, message)
    collectives += _tpu_collective_s(arch, "ag", tp, 2 * batch * vocab)          # the logits gathered
    return roof + collectives


def _ideal_step_s(cfg, arch, tp, batch, context) -> float:
    dep = Deployment.of(arch, cfg, tp=tp, fusion=FusionPolicy.FUSED, execution=ExecutionConfig(ideal=True))
    return StepModel(dep, RunCache()).extend(batch, 1, context).time_s


@settings(max_examples=60, deadline=None)
@given(model=st.sampled_from(sorted(MODELS)), machine=st.sampled_from(MACHINES),
       batch=st.integers(1, 512), context=st.integers(1, 4095))
def test_decode_step_matches_the_hand_roofline(model, machine, batch, context):
    cfg = MODELS[model]
    path, topology, tp = machine
    if cfg.num_attention_heads % tp or cfg.intermediate_size % tp:
        tp = 1
    arch = _arch(path, topology)
    got = _ideal_step_s(cfg, arch, tp, batch, context)
    assert got == pytest.approx(hand_decode_step_s(cfg, idealised(arch), tp, batch, context), rel=1e-9)


def test_large_batches_are_compute_bound_small_ones_memory_bound():
    arch = _arch("arch/dgx_h100.yaml", None)
    cfg = MODELS["llama2-7b"]
    dep = Deployment.of(arch, cfg, tp=1, fusion=FusionPolicy.FUSED, execution=ExecutionConfig(ideal=True))
    steps = StepModel(dep, RunCache())
    assert steps.extend(1, 1, 128).breakdown_s["memory"] > 0 == steps.extend(1, 1, 128).breakdown_s["compute"]
    assert steps.extend(1024, 1, 16).breakdown_s["compute"] > 0 == steps.extend(1024, 1, 16).breakdown_s["memory"]


def test_the_switch_idealises_machine_and_stack():
    dep = Deployment.of(_arch("arch/dgx_h100.yaml", None), MODELS["llama2-7b"], tp=8, fusion=FusionPolicy.FUSED)
    ideal = dep.ideal()
    assert ideal.arch.device.hbm.efficiency == 1.0 and ideal.arch.links.nvlink.latency_s == 0.0
    assert ideal.arch.launch.eager_s == 0.0 and ideal.arch.kernel.min_kernel_s == 0.0
    assert ideal.arch.kernel.tensor_efficiency == 1.0 and ideal.arch.collectives.base_latency_s == 0.0
    assert ideal.stack.host.per_step_s == 0.0 and ideal.stack.host.per_request_s == 0.0
    assert ideal.arch.device.hbm.bandwidth_bytes_per_s == dep.arch.device.hbm.bandwidth_bytes_per_s   # rates kept
    assert dep.arch.device.hbm.efficiency < 1


def test_a_model_run_reports_its_distance_from_the_roofline():
    from rdusim.config.workload import load_workload
    from rdusim.studies import run_study

    m = run_study(load_workload("workloads/llama2_7b_chat.yaml")).metrics
    for p in ("sn40l", "dgx_h100", "dgx_a100"):
        assert m[f"model.{p}.realistic_over_ideal"] == pytest.approx(
            m[f"model.{p}.latency_s"] / m[f"model.{p}.ideal_latency_s"], rel=1e-12)
        assert m[f"model.{p}.realistic_over_ideal"] > 1
