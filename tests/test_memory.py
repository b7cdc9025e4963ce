"""Memory checked on every run: the one rule of rdusim.memory, by hand, at the boundary."""

import dataclasses
import json

import pytest

from rdusim.cli import main
from rdusim.compiler import compile_plan
from rdusim.config.arch import load_arch
from rdusim.config.deployment import Deployment
from rdusim.config.model import load_model
from rdusim.config.policy import FusionPolicy
from rdusim.config.workload import load_workload
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase
from rdusim.memory import (OutOfMemory, device_memory, graph_memory, kv_bytes_per_rank, tier_split,
                           usable_bytes)
from rdusim.studies import run_study

H100 = load_arch("arch/dgx_h100.yaml")
SN40L = load_arch("arch/sn40l.yaml")
LLAMA = load_model("llama2-7b")


def with_hbm(arch, capacity, reserved):
    if hasattr(arch, "device"):
        return dataclasses.replace(arch, device=dataclasses.replace(arch.device, hbm=dataclasses.replace(
            arch.device.hbm, capacity_bytes=capacity, reserved_bytes=reserved)))
    return dataclasses.replace(arch, socket=dataclasses.replace(arch.socket, hbm=dataclasses.replace(
        arch.socket.hbm, capacity_bytes=capacity, reserved_bytes=reserved)))


def with_ddr(arch, capacity, reserved):
    return dataclasses.replace(arch, socket=dataclasses.replace(arch.socket, ddr=dataclasses.replace(
        arch.socket.ddr, capacity_bytes=capacity, reserved_bytes=reserved)))


def test_usable_is_capacity_less_reserve_in_every_shipped_arch():
    assert usable_bytes(H100.device.hbm) == 80 * 2**30 - 2e9
    assert usable_bytes(H100.node.host_dram) == 2 * 2**40 - 1.28e11
    assert usable_bytes(SN40L.socket.hbm) == 60 * 2**30
    assert usable_bytes(SN40L.socket.ddr) == 1.5 * 2**40 - 32 * 2**30


def test_kv_by_hand():
    # Llama-2-7B: 2 (K,V) x 32 layers x 32 KV heads x 128 x 2 bytes = 524288 B per token;
    # TP8 splits the heads: 65536 B per token per rank
    assert kv_bytes_per_rank(LLAMA, 8, 2, 148) == 2 * 148 * 65536
    assert kv_bytes_per_rank(LLAMA, 1, 1, 1) == 524288


def test_oom_boundary_exactly_at_capacity_gpu():
    need = device_memory(Deployment.of(H100, LLAMA, 8), 2, 148, 128)
    assert need.kv_bytes == 2 * 148 * 65536 and need.weights_bytes > 0 and need.activation_bytes > 0
    exact = need.weights_bytes + need.kv_bytes + need.activation_bytes
    at = device_memory(Deployment.of(with_hbm(H100, exact + 1e9, 1e9), LLAMA, 8), 2, 148, 128)
    assert at.fits and at.reason is None
    over = device_memory(Deployment.of(with_hbm(H100, exact + 1e9 - 1, 1e9), LLAMA, 8), 2, 148, 128)
    assert not over.fits
    assert "HBM needs" in over.reason and "1.00 reserved" in over.reason


def test_rdu_spills_to_ddr_and_ooms_exactly_when_ddr_is_full():
    # hand numbers: HBM 100 usable (110 - 10 reserved), 10 of workspace, 80 weights + 30 KV
    # -> 90 fit in HBM, 20 spill (weights first) to DDR
    arch = with_ddr(with_hbm(SN40L, 110.0, 10.0), 25.0, 5.0)
    hbm, ddr = tier_split(arch, {"weights": 80.0, "kv_cache": 30.0}, 10.0)
    assert dict(hbm.parts) == {"weights": 60.0, "kv_cache": 30.0, "activations": 10.0}
    assert ddr.used_bytes == 20.0 and ddr.usable_bytes == 20.0 and ddr.fits and hbm.fits
    _, ddr = tier_split(with_ddr(arch, 24.999, 5.0), {"weights": 80.0, "kv_cache": 30.0}, 10.0)
    assert not ddr.fits
    # a GPU has no spill tier: the same bytes do not fit its HBM
    (gpu,) = tier_split(with_hbm(H100, 110.0, 10.0), {"weights": 80.0, "kv_cache": 30.0}, 10.0)
    assert gpu.used_bytes == 120.0 and not gpu.fits


def test_compiler_uses_the_same_rule_and_raises_when_ddr_is_full():
    g = build_model_graph(LLAMA, Phase.DECODE, 1, 256, tp=8, layers=2)
    need = graph_memory(SN40L, g, FusionPolicy.FUSED)
    tiny = with_hbm(SN40L, 2e6, 1e6)
    plan = compile_plan(g, tiny, FusionPolicy.FUSED)
    assert "ddr" in set(plan.placement.values())
    with pytest.raises(OutOfMemory, match="exceed HBM"):
        compile_plan(g, with_ddr(tiny, 2e6, 1e6), FusionPolicy.FUSED)
    assert need.fits


def test_model_run_reports_oom_with_reason_and_no_latency():
    loaded = load_workload("workloads/llama2_7b_chat.yaml",
                           [("model", "bloom-176b"), ("platforms.dgx_h100.tp", 1)])
    r = run_study(loaded)
    assert r.metrics["model.dgx_h100.oom"] == 1
    assert "model.dgx_h100.latency_s" not in r.metrics
    assert "HBM needs" in r.extra["oom_reasons"]["dgx_h100"]
    assert r.metrics["model.sn40l.oom"] == 0 and r.metrics["model.sn40l.latency_s"] > 0
    assert r.metrics["model.dgx_h100.memory.weights_bytes"] > 78e9


def test_cli_bloom_on_one_h100_is_an_oom_result(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "workloads/llama2_7b_chat.yaml", "--set", "model=bloom-176b",
                 "--set", "platforms.dgx_h100.tp=1", "--out", str(out)])
    assert code == 0
    assert "OOM" in capsys.readouterr().out
    m = json.loads((out / "results.json").read_text())["metrics"]
    assert m["model.dgx_h100.oom"] == 1 and "model.dgx_h100.latency_s" not in m


def test_fusion_study_reports_oom_per_mode(tmp_path):
    loaded = load_workload("tests/data/fusion_small.yaml")
    small = with_ddr(with_hbm(loaded.archs["sn40l"], 2e6, 1e6), 2e6, 1e6)
    loaded = dataclasses.replace(loaded, archs={**loaded.archs, "sn40l": small})
    r = run_study(loaded)
    assert r.metrics["fusion.llama_decode.fused_ho.oom"] == 1
    assert "fusion.llama_decode.fused_ho.time_s" not in r.metrics
    assert r.metrics["fusion.fft.unfused.oom"] in (0, 1)
    assert "llama_decode.sn40l" in r.extra["oom_reasons"]


def test_report_shows_the_oom_row():
    from rdusim.report.keys import model_view
    from rdusim.report.section_model import latency_table

    loaded = load_workload("workloads/llama2_7b_chat.yaml",
                           [("model", "bloom-176b"), ("platforms.dgx_h100.tp", 1)])
    r = run_study(loaded)
    t = latency_table(model_view(r.metrics, list(r.extra["platforms"])))
    rows = {row[0]: row for row in t.rows}
    assert rows["dgx_h100"][1] == "OOM" and "dgx_h100" in t.note
    assert isinstance(rows["sn40l"][1], float)


def test_a_reserve_not_below_capacity_is_bad_input_naming_the_key():
    from rdusim.errors import InputError

    with pytest.raises(InputError) as exc:
        load_arch("arch/sn40l.yaml", [("socket.hbm.reserved_bytes", {"value": 7e10, "source": "what-if"})])
    assert exc.value.key == "socket.hbm.reserved_bytes" and "less than capacity_bytes" in exc.value.expected
