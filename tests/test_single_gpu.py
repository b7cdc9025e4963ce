"""Single-GPU machines (arch/rtx3090.yaml, a40, a100_40gb, a100_80gb, h100_sxm, h100_pcie):
datasheet figures, one device and no NVLink, decode streams the weights over the card's
memory, a second GPU needs a fabric."""

from __future__ import annotations

import pytest

from rdusim.cache import RunCache
from rdusim.config.arch import load_arch
from rdusim.config.deployment import Deployment
from rdusim.config.model import load_model
from rdusim.config.policy import FusionPolicy
from rdusim.engine.stepper import StepModel
from rdusim.errors import InputError
from rdusim.graph.tensor import DType

# name: (bf16 dense tensor FLOP/s, device memory bytes, its bandwidth, host link per direction);
# memory sizes are binary (a "24 GB" card holds 24 GiB)
GIB = 2 ** 30
DATASHEET = {"rtx3090": (71e12, 24 * GIB, 936e9, 31.5e9), "a40": (149.7e12, 48 * GIB, 696e9, 32e9),
             "a100_40gb": (312e12, 40 * GIB, 1555e9, 32e9), "a100_80gb": (312e12, 80 * GIB, 2039e9, 32e9),
             "h100_sxm": (989e12, 80 * GIB, 3.35e12, 64e9), "h100_pcie": (756e12, 80 * GIB, 2.0e12, 64e9)}


@pytest.mark.parametrize("name", sorted(DATASHEET))
def test_datasheet_figures_one_gpu_no_nvlink(name):
    arch = load_arch(f"arch/{name}.yaml")
    rate, cap, bw, pcie = DATASHEET[name]
    assert arch.native_rate(DType.BF16) == pytest.approx(rate)
    assert (arch.device_hbm.capacity_bytes, arch.device_hbm.bandwidth_bytes_per_s) == (cap, bw)
    assert arch.links.pcie.bandwidth_bytes_per_s == pcie
    assert arch.devices_per_node == 1 and arch.links.nvlink is None
    assert (arch.native_rate(DType.FP8_E4M3) is not None) == name.startswith("h100")    # FP8: Hopper only


@pytest.mark.parametrize("name", ["rtx3090", "h100_pcie"])
def test_decode_streams_the_weights_over_the_cards_memory(name):
    arch = load_arch(f"arch/{name}.yaml")
    dep = Deployment.of(arch, load_model("llama2-7b"), tp=1, fusion=FusionPolicy.FUSED)
    step = StepModel(dep, RunCache()).extend(1, 1, 256)
    weights = 6.738e9 * 2 - 32000 * 4096 * 2 + 256 * 2 * 32 * 4096 * 2      # all but the embedding table, + KV
    memory = weights / arch.device_hbm.effective_bandwidth_bytes_per_s
    assert step.breakdown_s["collective"] == 0
    assert memory < step.time_s - step.breakdown_s["host"] < memory * 1.15      # floors and launches on top


def test_two_gpus_need_a_fabric():
    with pytest.raises(InputError) as e:
        load_arch("arch/rtx3090.yaml", [("node.gpus", {"value": 2, "source": "two cards"})])
    assert e.value.key == "links.nvlink"


def test_tensor_parallel_beyond_the_one_gpu_is_an_input_error(tmp_path):
    from rdusim.config.workload import load_workload

    wl = tmp_path / "w.yaml"
    wl.write_text("name: w\nkind: model\nmodel: llama2-7b\nprompt_tokens: 16\noutput_tokens: 2\nbatch_size: 1\n"
                  "platforms:\n  box: {arch: arch/rtx3090.yaml, tp: 2}\n")
    with pytest.raises(InputError) as e:
        load_workload(str(wl))
    assert e.value.key == "platforms.box.tp"
