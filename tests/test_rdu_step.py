"""simulate_step / simulate_inference on the SN40L: launch orchestration, the kernel cache,
what-ifs in the physical direction, breakdowns, determinism."""

from __future__ import annotations

import pytest

from rdusim.config.arch import load_arch
from rdusim.config.model import load_model
from rdusim.config.policy import FusionPolicy, LaunchMode
from rdusim.cache import RunCache
from rdusim.config.deployment import Deployment
from rdusim.engine.inference import BREAKDOWN_KEYS, simulate_inference
from rdusim.engine.rdu.step import simulate_step
from rdusim.errors import InputError
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase

ARCH = load_arch("arch/sn40l.yaml")
CFG = load_model("llama2-7b")
SO, HO = LaunchMode.SOFTWARE, LaunchMode.HARDWARE
U, F = FusionPolicy.UNFUSED, FusionPolicy.FUSED


def graph(phase: Phase, seq: int = 1024, layers: int = 2):
    return build_model_graph(CFG, phase, 1, seq, tp=8, layers=layers)


def step(arch=ARCH, phase=Phase.DECODE, fusion=F, launch=HO, **kw):
    return simulate_step(arch, graph(phase, **kw), fusion=fusion, launch=launch, tp=8)


def arch_with(*sets):
    return load_arch("arch/sn40l.yaml", list(sets))


def test_launch_gaps_come_from_the_orchestration():
    so, ho = step(launch=SO), step(launch=HO)
    assert so.kernels == ho.kernels
    launch = ARCH.launch
    for r in so.records:
        # the host spends its fixed cost plus the per-stream setup before every kernel
        assert r["launch_s"] >= launch.software_s
    assert ho.records[0]["launch_s"] == pytest.approx(launch.hardware_s)
    assert all(r["launch_s"] == pytest.approx(launch.hardware_s) for r in ho.records[1:])
    assert so.breakdown_s["launch"] > ho.breakdown_s["launch"] > 0
    starts = [r["start_s"] for r in ho.records]
    assert starts == sorted(starts) and starts[0] == pytest.approx(launch.software_s + launch.hardware_s)


@pytest.mark.parametrize("fusion,launch", [(U, SO), (F, SO), (F, HO)])
def test_breakdown_sums_to_step_time(fusion, launch):
    s = step(fusion=fusion, launch=launch)
    assert set(s.breakdown_s) == set(BREAKDOWN_KEYS)
    assert sum(s.breakdown_s.values()) == pytest.approx(s.time_s)
    assert s.breakdown_s["host"] == 0.0     # no stack host work asked for
    assert all(0.0 <= v <= 1.0 + 1e-9 for v in s.util.values())


def test_repeated_layers_are_simulated_once():
    cache = RunCache()
    s = simulate_step(ARCH, graph(Phase.DECODE, layers=6), fusion=F, launch=HO, tp=8, cache=cache)
    assert cache.misses["kernel"] <= 4 and cache.hits["kernel"] >= 4
    assert sum(r["reused"] for r in s.records) == cache.hits["kernel"]     # a fresh cache: repeats only
    before = cache.misses["kernel"]
    simulate_step(ARCH, graph(Phase.DECODE, layers=6), fusion=F, launch=SO, tp=8, cache=cache)
    assert cache.misses["kernel"] == before          # launch mode does not change kernels


def test_same_inputs_same_results():
    a = simulate_step(ARCH, graph(Phase.PREFILL), fusion=F, launch=SO, tp=8, cache=RunCache())
    b = simulate_step(ARCH, graph(Phase.PREFILL), fusion=F, launch=SO, tp=8, cache=RunCache())
    assert a == b


def test_fusion_and_hardware_launch_speed_up_decode():
    unfused, so, ho = step(fusion=U, launch=SO), step(launch=SO), step(launch=HO)
    assert unfused.time_s > so.time_s > ho.time_s
    assert unfused.kernels > 5 * so.kernels


def test_roofline_floor_holds_for_a_step():
    for phase in (Phase.PREFILL, Phase.DECODE):
        s = step(phase=phase)
        floor = max(s.flops / ARCH.peak_flops_per_s_per_socket,
                    s.bytes_by_tier["hbm"] / ARCH.socket.hbm.bandwidth_bytes_per_s)
        assert s.time_s >= floor



# ---- the kernel cache keys a kernel on the hardware it uses ----

def _ddr(bw: float):
    return ("socket.ddr.bandwidth_bytes_per_s", {"value": bw, "source": "what-if"})


_TINY_HBM = ("socket.hbm", {"capacity_bytes": {"value": 1e6, "source": "what-if: weights spill to DDR"},
                            "bandwidth_bytes_per_s": {"value": 2.0e+12, "source": "as arch/sn40l.yaml"},
                            "efficiency": {"value": 0.9, "source": "as arch/sn40l.yaml"},
                            "latency_s": {"value": 5.0e-7, "source": "as arch/sn40l.yaml"},
                            "reserved_bytes": {"value": 0, "source": "what-if: nothing reserved"}})


def test_ddr_bandwidth_does_not_resimulate_hbm_only_kernels():
    g = graph(Phase.DECODE)
    cache = RunCache()
    base = simulate_step(ARCH, g, fusion=F, launch=HO, tp=8, cache=cache)
    assert all(r["ddr_bytes"] == 0 for r in base.records)
    simulated = cache.misses["kernel"]
    slow = simulate_step(arch_with(_ddr(5e10)), g, fusion=F, launch=HO, tp=8, cache=cache)
    assert cache.misses["kernel"] == simulated                 # every kernel came from the cache
    # "reused" marks a repeat within the step, whatever the cache held: the same rows
    assert [r["reused"] for r in slow.records] == [r["reused"] for r in base.records]
    assert slow.time_s == base.time_s


def test_ddr_bandwidth_resimulates_kernels_that_spill_to_ddr():
    g = graph(Phase.DECODE)             # unfused: weight-reading kernels and activation-only ones
    cache = RunCache()
    spill = simulate_step(arch_with(_TINY_HBM), g, fusion=U, launch=SO, tp=8, cache=cache)
    ddr_kernels = [r for r in spill.records if r["ddr_bytes"] > 0]
    assert ddr_kernels and len(ddr_kernels) < len(spill.records)
    simulated = cache.misses["kernel"]
    slow = simulate_step(arch_with(_TINY_HBM, _ddr(5e10)), g, fusion=U, launch=SO, tp=8, cache=cache)
    assert cache.misses["kernel"] > simulated                  # the DDR kernels ran again...
    for a, b in zip(spill.records, slow.records):
        if a["ddr_bytes"] > 0:
            assert b["time_s"] > a["time_s"]            # ...slower on the slower DDR
        else:
            assert b["time_s"] == a["time_s"]
    fresh = simulate_step(arch_with(_TINY_HBM, _ddr(5e10)), g, fusion=U, launch=SO, tp=8, cache=RunCache())
    # the cache never changes a result, the records' "reused" flags included
    assert (fresh.time_s, fresh.breakdown_s, fresh.util) == (slow.time_s, slow.breakdown_s, slow.util)
    assert list(fresh.records) == list(slow.records)


# ---- what-ifs through the same dotted --set paths the CLI uses ----

def test_whatif_smaller_sram_is_not_faster():
    small = arch_with(("socket.pmu.capacity_bytes", {"value": 8192, "source": "what-if"}))
    g = graph(Phase.PREFILL, seq=2048)
    base = simulate_step(ARCH, g, fusion=F, launch=HO, tp=8)
    cut = simulate_step(small, g, fusion=F, launch=HO, tp=8)
    assert cut.kernels > base.kernels and cut.time_s > base.time_s


def test_whatif_more_pcus_speed_up_compute_bound_prefill():
    g = graph(Phase.PREFILL, seq=2048)
    half = arch_with(("socket.pcu.count", {"value": 520, "source": "what-if"}))
    double = arch_with(("socket.pcu.count", {"value": 2080, "source": "what-if"}))
    t = [simulate_step(a, g, fusion=F, launch=HO, tp=8).time_s for a in (half, ARCH, double)]
    assert t[0] > t[1] > t[2]


def test_whatif_more_hbm_bandwidth_speeds_up_decode():
    fast = arch_with(("socket.hbm.bandwidth_bytes_per_s", {"value": 4e12, "source": "what-if"}))
    assert step(arch=fast).time_s < step().time_s
    assert step(arch=fast, fusion=U, launch=SO).time_s < step(fusion=U, launch=SO).time_s


def test_whatif_launch_cost_hits_software_orchestration():
    dear = arch_with(("launch.software_s", {"value": 1e-4, "source": "what-if"}))
    assert step(arch=dear, launch=SO).time_s > step(launch=SO).time_s
    extra = step(arch=dear, launch=HO).time_s - step(launch=HO).time_s
    # HO pays the host once per step (handing over the schedule), not per kernel
    assert extra == pytest.approx(1e-4 - ARCH.launch.software_s, rel=1e-6)


def test_tp_beyond_the_node_is_an_input_error():
    with pytest.raises(InputError):
        simulate_step(ARCH, graph(Phase.DECODE), fusion=F, launch=HO, tp=16)


def test_inference_adds_up():
    dep = Deployment.of(ARCH, CFG, 8, F, HO)
    t = simulate_inference(dep, 128, 6, 1)
    assert t.latency_s == pytest.approx(t.ttft_s + 5 * t.tpot_s)
    assert sum(t.breakdown_s.values()) == pytest.approx(t.latency_s)
    assert t.tpot_s > t.step_s["host"]            # the engine's kernels are most of a step
    assert t.weight_bytes_per_device == pytest.approx(6.74e9 * 2 / 8, rel=0.03)
    assert {r["phase"] for r in t.records} == {"prefill", "decode"}
    one = simulate_inference(dep, 128, 1, 1)
    assert one.tpot_s == 0 and one.latency_s == pytest.approx(one.ttft_s)
    so = simulate_inference(Deployment.of(ARCH, CFG, 8, F, SO), 128, 6, 1)
    assert so.latency_s > t.latency_s


def test_model_step_from_two_layers_is_the_whole_models_step():
    from rdusim.engine.inference import weight_bytes_per_rank
    from rdusim.engine.rdu.model_step import model_step
    from rdusim.cache import RunCache

    full_graph = build_model_graph(CFG, Phase.DECODE, 3, 333, tp=8)
    full = simulate_step(ARCH, full_graph, fusion=F, launch=HO, tp=8, cache=RunCache(), host_s=1e-3)
    step = model_step(Deployment.of(ARCH, CFG, 8, F, HO), Phase.DECODE, 3, 333, 1e-3, RunCache().get)
    assert weight_bytes_per_rank(CFG, 8) == full_graph.param_bytes
    assert (step.time_s, step.breakdown_s, step.util, step.bytes_by_tier) == \
        (full.time_s, full.breakdown_s, full.util, full.bytes_by_tier)
    assert [dict(r, reused=0) for r in step.records] == [dict(r, reused=0) for r in full.records]
