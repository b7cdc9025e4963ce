"""DGX host -> GPU copies: per-GPU PCIe links behind one shared host limit."""

import pytest

from rdusim.config.arch import load_arch
from rdusim.engine.gpu.hostcopy import host_copy_times


def test_default_h100_reproduces_the_papers_64_gb_s_aggregate():
    arch = load_arch("arch/dgx_h100.yaml")
    expert = 13.48e9            # Llama-2-7B in BF16, split over 8 GPUs
    ends = host_copy_times(arch, [expert / 8] * 8)
    lat = arch.links.pcie.latency_s + arch.links.host_aggregate.latency_s
    assert ends == pytest.approx([lat + expert / 64e9] * 8, rel=1e-9)


def test_default_a100_reproduces_the_papers_32_gb_s_aggregate():
    arch = load_arch("arch/dgx_a100.yaml")
    ends = host_copy_times(arch, [1e9] * 8)
    assert max(ends) == pytest.approx(8e9 / 32e9, rel=1e-3)


def test_one_gpu_alone_is_limited_by_its_own_link():
    arch = load_arch("arch/dgx_h100.yaml", [("links.pcie.bandwidth_bytes_per_s", 10e9)])
    (end,) = host_copy_times(arch, [10e9])
    assert end == pytest.approx(1.0, rel=1e-3)


def test_too_many_copies_rejected():
    arch = load_arch("arch/dgx_h100.yaml")
    with pytest.raises(ValueError):
        host_copy_times(arch, [1.0] * 9)


def test_measured_variant_eight_gpus_contend_for_the_host_limit():
    arch = load_arch("arch/dgx_h100_pcie_measured.yaml")
    shard = 1.685e9
    (alone,) = host_copy_times(arch, [shard])
    together = host_copy_times(arch, [shard] * 8)
    assert alone == pytest.approx(arch.links.pcie.latency_s + shard / 55e9, rel=1e-6)
    # 8 x 55 GB/s of demand > the 220 GB/s host limit: each gets 27.5 GB/s
    assert together == pytest.approx([arch.links.pcie.latency_s + shard / 27.5e9] * 8, rel=1e-6)
    # still much faster than the paper's 64 GB/s aggregate assumption
    assert max(together) < host_copy_times(load_arch("arch/dgx_h100.yaml"), [shard] * 8)[0] / 3


def test_the_measured_pcie_variant_is_the_dgx_h100_but_for_its_host_links():
    """arch/dgx_h100_pcie_measured.yaml says it differs from dgx_h100.yaml only in name,
    description and the host links: a refit of the H100 must reach it too."""
    from rdusim.results import plain

    base, variant = plain(load_arch("arch/dgx_h100.yaml")), plain(load_arch("arch/dgx_h100_pcie_measured.yaml"))
    for spec in (base, variant):
        spec.pop("name"), spec.pop("description")
        spec["links"].pop("pcie"), spec["links"].pop("host_aggregate")
        spec["sources"] = {k: v for k, v in spec["sources"].items()
                           if not k.startswith(("links.pcie.", "links.host_aggregate."))}
    assert variant == base
