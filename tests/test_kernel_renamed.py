"""A repeated layer's kernel copy carries its template's derived values, and they are what
working them out on the copy gives (names are not content)."""

from __future__ import annotations

from dataclasses import replace

from rdusim.cache import content_key
from rdusim.compiler.repeat import compile_repeated
from rdusim.config.arch import load_arch
from rdusim.config.model import load_model
from rdusim.config.policy import FusionPolicy
from rdusim.engine.rdu.hardware import SocketHw, kernel_uses
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase

DERIVED = ("flops", "pcus", "pmus", "agcus", "streams", "is_collective_only", "d2d_bytes")


def test_renamed_copies_equal_fresh_ones():
    arch = load_arch("arch/sn40l.yaml")
    head = build_model_graph(load_model("llama2-7b"), Phase.DECODE, 4, 256, tp=8, layers=2)
    plan = compile_repeated(head, 32, arch, FusionPolicy.FUSED, tiles=64)
    hw = SocketHw.of(arch)
    for k in plan.kernels:
        fresh = replace(k)               # the same fields, nothing worked out yet
        for attr in DERIVED:
            assert getattr(k, attr) == getattr(fresh, attr), (k.name, attr)
        assert content_key(k) == content_key(fresh)
        assert kernel_uses(k) == kernel_uses(fresh)
        assert hw.for_kernel(k) == hw.for_kernel(fresh)
    layers = {k.layer for k in plan.kernels if k.layer >= 0}
    assert layers == set(range(32))
    assert len({k.name for k in plan.kernels}) == len(plan.kernels)      # names stay distinct
