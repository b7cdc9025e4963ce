"""Prices and the power model (rdusim.config.machine_cost, rdusim.energy, rdusim.cost): a device
held at 100% of every unit draws its TDP, an idle one its static power, energy adds up across
a step's records and a request's steps, dollars are price x devices x time."""

from __future__ import annotations

import glob

import pytest
from hypothesis import given, strategies as st

from rdusim.cache import RunCache
from rdusim.config.arch import load_arch
from rdusim.config.cluster import load_cluster
from rdusim.config.deployment import Deployment
from rdusim.config.model import load_model
from rdusim.config.policy import FusionPolicy
from rdusim.cost import decode_activity, request_activity, request_costs
from rdusim.energy import Activity, EnergyModel, Unit, idle, step_activity
from rdusim.engine.inference import simulate_inference
from rdusim.engine.stepper import StepModel
from rdusim.errors import InputError
from rdusim.graph.tensor import DType

ARCHS = sorted(glob.glob("arch/*.yaml"))


@pytest.mark.parametrize("path", ARCHS)
def test_fully_busy_device_draws_its_tdp_and_an_idle_one_its_static_power(path):
    arch = load_arch(path)
    m = EnergyModel.of(arch)
    assert m is not None, f"{path} has no power: block"
    assert m.energy_j(m.busy()) == pytest.approx(arch.power.tdp_w, rel=1e-12)          # one second, all units
    assert m.energy_j(m.busy(seconds=2.5)) == pytest.approx(2.5 * arch.power.tdp_w, rel=1e-12)
    assert m.energy_j(idle(3.0)) == pytest.approx(3.0 * arch.power.static_w, rel=1e-12)
    for d in m.peak_flops_per_s:                      # no compute format takes a busy device over its TDP
        assert m.energy_j(m.busy(d)) <= arch.power.tdp_w * (1 + 1e-12)
    # every unit the machine has is part of "fully busy"
    assert Unit.HBM in m.peak_bytes_per_s and Unit.HOST_LINK in m.peak_bytes_per_s
    assert (Unit.SPILL in m.peak_bytes_per_s) == (arch.spill_tier is not None)
    assert (Unit.FABRIC in m.peak_bytes_per_s) == (arch.fabric_bytes_per_s > 0)


def test_hand_computed_calibration_of_the_h100():
    arch = load_arch("arch/dgx_h100.yaml")
    p = arch.power
    e = p.compute_j_per_flop          # the format drawing most at its peak sets the scale (FP8 here)
    compute = max(989e12 * e["bf16"], 1979e12 * e["fp8_e4m3"], 1979e12 * e["int8"])
    raw = compute + 3.35e12 * p.hbm_j_per_byte + 450e9 * p.fabric_j_per_byte + 64e9 * p.host_link_j_per_byte
    m = EnergyModel.of(arch)
    assert m.scale == pytest.approx((700 - 70) / raw, rel=1e-12)
    # 1e12 bf16 FLOPs and 1e9 HBM bytes in 0.01 s
    a = Activity(0.01, 1e12, DType.BF16, {Unit.HBM: 1e9})
    want = 70 * 0.01 + m.scale * (1e12 * p.compute_j_per_flop["bf16"] + 1e9 * p.hbm_j_per_byte)
    assert m.energy_j(a) == pytest.approx(want, rel=1e-12)


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1e15), st.floats(0, 1e12), st.floats(0, 1e10)),
                min_size=1, max_size=8))
def test_energy_is_additive_over_activities(parts):
    m = EnergyModel.of(load_arch("arch/sn40l.yaml"))
    acts = [Activity(s, f, DType.BF16, {Unit.HBM: h, Unit.SPILL: d}) for s, f, h, d in parts]
    total = acts[0]
    for a in acts[1:]:
        total = total + a
    assert m.energy_j(total) == pytest.approx(sum(m.energy_j(a) for a in acts), rel=1e-9, abs=1e-12)


def _record_activity(r: dict, dtype: DType) -> Activity:
    """A per-kernel record's activity, whatever the family names its byte columns."""
    moved = {Unit.HBM: r.get("hbm_bytes", r.get("bytes", 0.0)) or 0.0, Unit.SPILL: r.get("ddr_bytes", 0.0),
             Unit.FABRIC: r.get("p2p_bytes", 0.0)}
    return Activity(0.0, r.get("flops", 0.0) or 0.0, dtype, moved)


@pytest.mark.parametrize("path,tp", [("arch/sn40l.yaml", 8), ("arch/dgx_h100.yaml", 1), ("arch/tpu_v5e.yaml", 1)])
def test_energy_is_conserved_across_a_steps_records(path, tp):
    """Static power over the step plus every record's dynamic energy = the step's energy."""
    arch = load_arch(path)
    dep = Deployment.of(arch, load_model("llama2-7b"), tp=tp, fusion=FusionPolicy.FUSED)
    steps = StepModel(dep, RunCache())
    m = EnergyModel.of(arch)
    for step in (steps.prefill(1, 128), steps.extend(2, 1, 256)):
        whole = m.energy_j(step_activity(step, DType.BF16))
        parts = m.static_w * step.time_s + sum(m.dynamic_j(_record_activity(r, DType.BF16)) for r in step.records)
        assert parts == pytest.approx(whole, rel=1e-9)
        assert whole > m.static_w * step.time_s


def test_collectives_charge_the_fabric():
    arch = load_arch("arch/dgx_h100.yaml")
    dep = Deployment.of(arch, load_model("llama2-7b"), tp=8, fusion=FusionPolicy.FUSED)
    step = StepModel(dep, RunCache()).extend(1, 1, 256)
    # 2 all-reduces a layer (+ the head's) of a 4096-wide bf16 token vector; a ring or tree sends about 2x it
    assert 64 * 4096 * 2 <= step.link_bytes["fabric"] <= 70 * 2 * 4096 * 2 * 2


def test_a_requests_energy_is_its_steps_and_its_idle_set_up():
    arch = load_arch("arch/sn40l.yaml")
    dep = Deployment.of(arch, load_model("llama2-7b"), tp=8, fusion=FusionPolicy.FUSED)
    cache = RunCache()
    t = simulate_inference(dep, 128, 20, 1, cache)
    a = request_activity(dep, t, 128, 20, 1, cache)
    assert a.seconds == pytest.approx(t.latency_s, rel=1e-9)       # the same steps, weighted as their times
    steps = StepModel(dep, cache)
    total, _, _ = steps.decode_sums(1, 128, 19)
    assert decode_activity(steps, 1, 128, 19).seconds == pytest.approx(total, rel=1e-12)
    m = EnergyModel.of(arch)
    prefill = step_activity(steps.prefill(1, 128), DType.BF16)
    parts = m.energy_j(idle(t.request_s["host"])) + m.energy_j(prefill) + m.energy_j(decode_activity(steps, 1, 128, 19))
    assert m.energy_j(a) == pytest.approx(parts, rel=1e-9)
    got = request_costs(dep, t, 128, 20, 1, cache)
    assert got["energy_j"] == pytest.approx(8 * m.energy_j(a), rel=1e-12)
    assert got["energy_j_per_token"] == pytest.approx(got["energy_j"] / 20)
    assert m.static_w < got["power_w_per_device"] < m.tdp_w
    assert "usd_per_mtoken" not in got and "cost_usd" not in got      # the SN40L has no published price


def test_prices_node_from_devices_and_what_if_overrides():
    h100 = load_arch("arch/dgx_h100.yaml")
    assert h100.price_per_device_hour_usd == 2.1 and h100.price_per_node_hour_usd == pytest.approx(16.8)
    assert "CUDO" in h100.sources["price.per_device_hour_usd"]
    gcp = load_arch("arch/dgx_h100.yaml", [("price.per_device_hour_usd", 10.8)])
    assert gcp.price_per_node_hour_usd == pytest.approx(86.4)
    node = load_arch("arch/dgx_h100.yaml", [("price", {"per_node_hour_usd": {"value": 40.0, "source": "a quote"}})])
    assert node.price_per_device_hour_usd == pytest.approx(5.0) and node.price_per_node_hour_usd == 40.0
    assert load_arch("arch/sn40l.yaml").price_per_device_hour_usd is None
    sn = load_arch("arch/sn40l.yaml", [("price.per_device_hour_usd", 3.0)])
    assert sn.price_per_node_hour_usd == pytest.approx(24.0)
    assert load_cluster("clusters/dgx_h100_x2.yaml").price_per_node_hour_usd == pytest.approx(16.8)
    assert load_cluster("clusters/sn40l_x2.yaml").price_per_node_hour_usd is None


@pytest.mark.parametrize("key,value,expected", [
    ("power.static_w", 800.0, "less than tdp_w"),
    ("power.compute_j_per_flop.fp64", {"value": 1e-12, "source": "x"}, "a number format"),
    ("price.per_device_hour_usd", -1.0, "a number > 0"),
])
def test_bad_price_or_power_is_an_input_error(key, value, expected):
    with pytest.raises(InputError) as err:
        load_arch("arch/dgx_h100.yaml", [(key, value)])
    assert expected in str(err.value) and key.split(".")[0] in str(err.value)


def test_model_run_reports_dollars_and_joules(run_workload):
    out, res = run_workload("workloads/llama2_7b_chat.yaml", [])
    m = res
    tokens = 1 * 20
    lat = m["model.dgx_h100.latency_s"]
    assert m["model.dgx_h100.usd_per_mtoken"] == pytest.approx(2.1 * 8 * lat / 3600 / tokens * 1e6, rel=1e-9)
    assert m["model.dgx_h100.energy_j_per_token"] > 0 and "model.sn40l.usd_per_mtoken" not in m
    assert m["model.sn40l.energy_j_per_token"] > 0


@pytest.mark.parametrize("path", ["arch/sn40l.yaml", "arch/dgx_h100.yaml"])
def test_serving_one_request_alone_costs_what_the_model_run_of_it_costs(path):
    """A lone request is one prefill and output - 1 decode steps at batch 1: the serving
    decomposition (per step + per token + per prefill, rdusim.serve_cost) must give back
    the energy of those steps, as the model run computes it step by step."""
    from rdusim.config.workload_serve import Batching
    from rdusim.serve.arrivals import Arrival
    from rdusim.serve.platform import ServePlatform
    from rdusim.serve_cost import serve_energy

    arch = load_arch(path)
    cache = RunCache()
    dep = Deployment.of(arch, load_model("llama2-7b"), tp=8, fusion=FusionPolicy.FUSED)
    plat = ServePlatform.build("p", dep, cache)
    log = plat.serve(Batching.CONTINUOUS, [Arrival(0.0, 300, 40)])
    got = serve_energy(plat, log)
    m = EnergyModel.of(arch)
    q = log.seqs[0]
    steps = StepModel(dep, cache)
    dynamic = (m.dynamic_j(step_activity(steps.prefill(1, 300), DType.BF16))
               + m.dynamic_j(decode_activity(steps, 1, 300, 39)))
    want = 8 * (dynamic + m.static_w * (q.finish_s - q.arrival_s))
    assert got["energy_j_per_request"] == pytest.approx(want, rel=0.005)
    assert got["energy_j_per_token"] == pytest.approx(want / 40, rel=0.005)
    assert m.static_w < got["power_w_per_device"] < m.tdp_w


def test_a_coe_batch_is_its_router_its_experts_its_copies_and_static_power():
    """rdusim.coe_cost by hand: one expert, one prompt, 1 GB copied."""
    from types import SimpleNamespace

    from rdusim.coe_cost import coe_batch_energy
    from rdusim.studies.coe_timing import ModelTimer

    for path, source in (("arch/sn40l.yaml", Unit.SPILL), ("arch/dgx_h100.yaml", Unit.HOST_LINK)):
        arch = load_arch(path)
        cache = RunCache()
        dep = Deployment.of(arch, load_model("llama2-7b"), tp=8, fusion=FusionPolicy.FUSED)
        timer = ModelTimer(dep, 128, cache)
        pr = SimpleNamespace(arch=arch, tp=8, router=timer, expert=timer)
        m = EnergyModel.of(arch)
        dyn = lambda n, tok: m.dynamic_j(request_activity(dep, timer.timing(n, tok), 128, tok, n, cache))  # noqa: E731
        got = coe_batch_energy(pr, 1, 20, 1, 0.3, 1e9, 1.0)
        want = 8 * (dyn(1, 1) + dyn(1, 20) + m.static_w * 0.3) + 1e9 * (m.j_per_byte[source] + m.j_per_byte[Unit.HBM])
        assert got == pytest.approx(want, rel=1e-12)
        # batch 8 over 4 distinct experts: 4 expert runs of 2 prompts each
        got8 = coe_batch_energy(pr, 8, 20, 1, 0.5, 0.0, 4.0)
        assert got8 == pytest.approx(8 * (dyn(8, 1) + 4 * dyn(2, 20) + m.static_w * 0.5), rel=1e-12)


def test_a_training_jobs_dollars_and_joules_by_hand():
    """rdusim.cost.job_rows: steps x the expected step's dynamic energy + static over the job."""
    from types import SimpleNamespace

    from rdusim.cost import job_rows
    from rdusim.engine.step import StepResult

    arch = load_arch("arch/a40.yaml")
    m = EnergyModel.of(arch)
    mk = lambda t, f, b: StepResult(t, 1, f, {"hbm": b}, {}, {})      # noqa: E731
    steps = {512: mk(1.0, 1e14, 1e11), 1024: mk(2.0, 2e14, 2e11)}
    job = SimpleNamespace(steps=100, job_s=100 * (0.25 * 1.0 + 0.75 * 2.0))
    got = job_rows(arch, 1, job, [(512, 0.25), (1024, 0.75)], steps, DType.BF16)
    dyn = 100 * (0.25 * m.dynamic_j(Activity(1.0, 1e14, DType.BF16, {Unit.HBM: 1e11}))
                 + 0.75 * m.dynamic_j(Activity(2.0, 2e14, DType.BF16, {Unit.HBM: 2e11})))
    assert got["job_energy_j"] == pytest.approx(dyn + m.static_w * job.job_s, rel=1e-12)
    assert got["job_usd"] == pytest.approx(0.79 * job.job_s / 3600, rel=1e-12)
    assert m.static_w < got["power_w_per_device"] < m.tdp_w
