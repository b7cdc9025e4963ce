"""The TPU v5e family: its arch file, the mesh a TP group spans, torus collectives by hand,
steps, copy paths, and runs of every study kind on a TPU platform."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from rdusim.cache import RunCache
from rdusim.config.arch import load_arch
from rdusim.config.deployment import Deployment
from rdusim.config.model import load_model
from rdusim.config.policy import FusionPolicy, LaunchMode
from rdusim.config.workload import load_workload
from rdusim.engine.collectives import CollectiveOp
from rdusim.engine.coe.switching import lone_switch_s
from rdusim.engine.families import family
from rdusim.engine.stepper import StepModel
from rdusim.errors import InputError
from rdusim.memory import device_memory
from rdusim.studies import run_study

AR, AG = CollectiveOp.ALLREDUCE, CollectiveOp.ALLGATHER
V5E = load_arch("arch/tpu_v5e.yaml")


def _arch(topology="4x4", **ici):
    arch = load_arch("arch/tpu_v5e.yaml", [("slice.topology", topology)])
    return dataclasses.replace(arch, ici=dataclasses.replace(arch.ici, **ici)) if ici else arch


def test_published_figures_and_their_sources():
    c = V5E.chip
    assert (c.bf16_flops_per_s, c.int8_ops_per_s) == (1.97e14, 3.93e14)
    assert (c.hbm.capacity_bytes, c.hbm.bandwidth_bytes_per_s) == (16 * 2**30, 819e9)
    assert V5E.derived()["ici_bytes_per_s_per_chip_bidirectional"] == 400e9     # 4 ports x 50 GB/s x 2 ways
    assert V5E.devices_per_node == 16 and V5E.hosts == 2
    assert V5E.host_dram.capacity_bytes == pytest.approx(2 * 512 * 2**30, rel=1e-6)     # two hosts
    numbers = [k for k in V5E.sources]
    assert numbers and all(V5E.sources[k].strip() for k in numbers)
    assert any("Cloud TPU" in V5E.sources[k] for k in numbers)


@pytest.mark.parametrize("topology,tp,axes", [
    ("4x4", 16, ((4, True), (4, True))), ("4x4", 4, ((4, True),)), ("4x4", 2, ((2, False),)),
    ("8x16", 32, ((8, True), (4, False))), ("2x2", 4, ((2, False), (2, False))), ("1x1", 1, ())])
def test_a_tp_group_lies_along_whole_mesh_axes(topology, tp, axes):
    assert _arch(topology).mesh_axes(tp) == axes


@pytest.mark.parametrize("tp", [3, 6, 17])
def test_a_tp_group_that_does_not_fit_the_mesh_is_refused(tp):
    with pytest.raises(ValueError, match="tp="):
        _arch("4x4").mesh_axes(tp)


def test_unpublished_slice_shape_is_an_input_error():
    with pytest.raises(InputError) as e:
        load_arch("arch/tpu_v5e.yaml", [("slice.topology", "3x3")])
    assert e.value.key == "slice.topology"


def test_one_closed_axis_allreduce_by_hand():
    # 4 chips on a closed axis, 4000 bytes, 50 GB/s a port each way, 1 us a hop, 5 us fixed:
    # 2(n-1) = 6 steps; 6000 bytes sent over two counter-rotating rings (2 x 50 GB/s)
    arch = _arch(efficiency=1.0, latency_s=1e-6)
    c = family(arch).collective(arch, AR, 4, 4000)
    assert (c.steps, c.wire_bytes) == (6, 6000)
    assert c.time_s == pytest.approx(5e-6 + 6e-6 + 6000 / 1e11, rel=1e-12)


def test_open_axis_runs_at_one_port():
    arch = _arch(efficiency=1.0, latency_s=0.0)
    c = family(arch).collective(arch, AG, 2, 4000)          # 2 of 4 chips along x: a line
    assert c.time_s == pytest.approx(5e-6 + 2000 / 5e10, rel=1e-12)


def test_two_axes_allreduce_by_hand():
    # 4x4, 16 chips, M bytes: each half (M/2) does reduce-scatter along one axis (3/4 of it),
    # all-reduce along the other on a quarter (2 x 3/4 of M/8), all-gather back (3/4 of it),
    # every phase on a closed ring (2 x 50 GB/s); the halves run mirrored at once
    arch = _arch(efficiency=1.0, latency_s=0.0)
    m = 8e6
    half = m / 2
    wire = (0.75 * half + 1.5 * half / 4 + 0.75 * half) / 1e11
    c = family(arch).collective(arch, AR, 16, m)
    assert c.time_s == pytest.approx(5e-6 + wire, rel=1e-12)
    assert c.steps == 3 + 6 + 3          # reduce-scatter, all-reduce, all-gather


def _dep(arch, model="llama2-7b", tp=4):
    return Deployment.of(arch, load_model(model), tp=tp, fusion=FusionPolicy.FUSED)


def test_default_stack_and_launch():
    dep = _dep(V5E)
    assert dep.stack.name == "jetstream" and dep.launch == LaunchMode.XLA


def test_decode_streams_the_weights_and_more_chips_are_faster():
    steps = {tp: StepModel(_dep(V5E, tp=tp), RunCache()).extend(4, 1, 512) for tp in (1, 4, 16)}
    assert steps[1].breakdown_s["collective"] == 0 and steps[4].breakdown_s["collective"] > 0
    assert steps[16].time_s < steps[4].time_s < steps[1].time_s
    # one chip: Llama-2-7B's weights but the embedding table (one row per sequence is read) and
    # 4 sequences' KV cache of 512 tokens cross HBM at its achievable bandwidth
    weights = 6.738e9 * 2 - 32000 * 4096 * 2
    kv = 4 * 512 * 2 * 32 * 4096 * 2
    bw = V5E.chip.hbm.effective_bandwidth_bytes_per_s
    assert steps[1].breakdown_s["memory"] == pytest.approx((weights + kv) / bw, rel=0.01)


def test_memory_per_chip_and_oom():
    llama = load_model("llama2-7b")
    assert device_memory(Deployment.of(V5E, llama, 1), 1, 1024, 128).fits     # 13.5 GB of 16.7 usable (16 GiB)
    assert device_memory(Deployment.of(V5E, llama, 1), 1, 4096).fits          # + 2.1 GB KV, 0.3 GB fused prefill work
    assert not device_memory(Deployment.of(V5E, llama, 1), 2, 4096).fits      # + 4.3 GB KV
    need = device_memory(Deployment.of(V5E, load_model("llama3-70b"), 4), 1, 4096)
    assert not need.fits and need.reason.startswith("per chip: HBM")


def test_copy_paths_share_a_host_dram_among_its_chips():
    links, paths = family(V5E).copy_links(V5E, 16)
    assert paths[0] == ("host_dram0", "pcie0", "hbm0") and paths[15] == ("host_dram1", "pcie15", "hbm15")
    assert sum(1 for n, _, _ in links if n.startswith("host_dram")) == 2
    # 16 chips copy 1/16 each; 8 PCIe links of 16 GB/s per host (128 GB/s) under the host's 200 GB/s
    nbytes = 16e9
    t = lone_switch_s(V5E, 16, nbytes)
    assert t == pytest.approx(nbytes / 16 / V5E.host.pcie.bandwidth_bytes_per_s + V5E.host.pcie.latency_s, rel=1e-6)


def _workload(tmp_path, kind_body: dict) -> str:
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(kind_body))
    return str(path)


def test_a_model_run_on_a_slice(tmp_path):
    wl = _workload(tmp_path, {"name": "tpu_run", "kind": "model", "model": "llama2-7b", "prompt_tokens": 128,
                              "output_tokens": 8, "batch_size": 2,
                              "platforms": {"v5e": {"arch": "arch/tpu_v5e.yaml", "tp": 4}}})
    m = run_study(load_workload(wl)).metrics
    assert m["model.v5e.oom"] == 0 and m["model.v5e.latency_s"] > m["model.v5e.ttft_s"] > 0


def test_a_gpu_launch_mode_on_a_tpu_platform_is_refused(tmp_path):
    wl = _workload(tmp_path, {"name": "tpu_run", "kind": "model", "model": "llama2-7b", "prompt_tokens": 128,
                              "output_tokens": 8, "batch_size": 1,
                              "platforms": {"v5e": {"arch": "arch/tpu_v5e.yaml", "tp": 4, "launch": "graph"}}})
    with pytest.raises(InputError) as e:
        load_workload(wl)
    assert e.value.key == "platforms.v5e.launch" and "xla" in e.value.expected


def test_a_fusion_study_on_a_slice(tmp_path):
    wl = _workload(tmp_path, {"name": "f", "kind": "fusion", "execution": {"tiles": 16},
                              "platforms": {"v5e": {"arch": "arch/tpu_v5e.yaml", "tp": 4}},
                              "benchmarks": [{"name": "dec", "model": "llama2-7b", "phase": "decode", "batch": 1,
                                              "seq": 512, "layers": 4}]})
    m = run_study(load_workload(wl)).metrics
    assert m["fusion.dec.v5e.fused.time_s"] < m["fusion.dec.v5e.unfused.time_s"]
    assert m["fusion.dec.v5e.speedup.fused_vs_unfused"] > 1
