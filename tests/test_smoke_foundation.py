"""First checks of the foundation: specs load, the 7B graph has its published size."""

from rdusim.config.arch import load_arch
from rdusim.config.model import load_model
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase


def test_sn40l_derived_peak_matches_published_638_tflops():
    arch = load_arch("arch/sn40l.yaml")
    assert abs(arch.peak_flops_per_s_per_socket / 638e12 - 1) < 0.01
    assert arch.sram_bytes_per_socket == 520 * 2**20


def test_llama2_7b_params():
    g = build_model_graph(load_model("llama2-7b"), Phase.DECODE, 1, 4096)
    assert abs(g.params / 6.74e9 - 1) < 0.01
