"""Every machine declares its host CPU as a device (arch files' ``host_cpu``, from a named
CPU's datasheet, or an assumed host where the accelerator has no fixed one), and the
rates the simulator derives from it are the datasheet arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdusim.config.arch import load_arch
from rdusim.graph.tensor import DType

ARCH = sorted((Path(__file__).resolve().parents[1] / "arch").glob("*.yaml"))


def test_there_are_machines_to_check():
    assert len(ARCH) >= 11


@pytest.mark.parametrize("path", ARCH, ids=lambda p: p.stem)
def test_every_machine_declares_a_host_cpu(path):
    arch = load_arch(path)
    cpu = arch.host_cpu
    assert cpu is not None, f"{path.name}: no host_cpu"
    assert cpu.model and cpu.cores >= 1
    assert cpu.native_rate(DType.FP32) > 0
    assert arch.host_dram.bandwidth_bytes_per_s > 0           # the memory it computes from
    # a format it cannot compute in natively runs at the FP32 rate
    assert cpu.achievable_rate(DType.INT4) == cpu.native_rate(DType.FP32) * cpu.gemm_efficiency


@pytest.mark.parametrize("name,cores,fp32,bf16,int8,dram", [
    # Xeon Gold 6338: 32 cores x 2.0 GHz x 64 FP32 FLOPs (2 AVX-512 FMA) / 256 INT8 ops (VNNI); 8 x DDR4-3200
    ("a40", 32, 32 * 2.0e9 * 64, None, 32 * 2.0e9 * 256, 8 * 25.6e9),
    # EPYC 7763: 64 cores x 2.45 GHz x 32 FP32 FLOPs (2 x 256-bit FMA); 8 x DDR4-3200
    ("a100_40gb", 64, 64 * 2.45e9 * 32, None, None, 8 * 25.6e9),
    ("a100_80gb", 64, 64 * 2.45e9 * 32, None, None, 8 * 25.6e9),
    # Xeon Platinum 8468: 48 cores x 2.1 GHz x 64 FP32 / 1024 BF16 / 2048 INT8 (AMX); 8 x DDR5-4800
    ("h100_sxm", 48, 48 * 2.1e9 * 64, 48 * 2.1e9 * 1024, 48 * 2.1e9 * 2048, 8 * 38.4e9),
    ("h100_pcie", 48, 48 * 2.1e9 * 64, 48 * 2.1e9 * 1024, 48 * 2.1e9 * 2048, 8 * 38.4e9),
    # the v5e host: 224 vCPUs = 112 cores (2 threads each) x 2.45 GHz x 32 FP32 FLOPs (Zen 3)
    ("tpu_v5e", 112, 112 * 2.45e9 * 32, None, None, None),
])
def test_host_cpu_rates_are_the_datasheet_arithmetic(name, cores, fp32, bf16, int8, dram):
    arch = load_arch(f"arch/{name}.yaml")
    cpu = arch.host_cpu
    assert cpu.cores == cores
    assert cpu.native_rate(DType.FP32) == pytest.approx(fp32, rel=1e-12)
    for dtype, want in ((DType.BF16, bf16), (DType.INT8, int8)):
        got = cpu.native_rate(dtype)
        assert got == (None if want is None else pytest.approx(want, rel=1e-12))
        assert cpu.compute_format(dtype) == (DType.FP32 if want is None else dtype)
    if dram is not None:
        assert arch.host_dram.bandwidth_bytes_per_s == pytest.approx(dram, rel=1e-12)
    derived = arch.derived()
    assert derived["host_cpu.cores"] == cores and derived["host_cpu.fp32_flops_per_s"] == pytest.approx(fp32)


def test_an_assumed_host_says_so():
    for name in ("a40", "a100_40gb", "a100_80gb", "h100_sxm", "h100_pcie", "tpu_v5e"):
        assert load_arch(f"arch/{name}.yaml").host_cpu.model.startswith("assumed: "), name
