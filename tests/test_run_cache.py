"""The run cache: content keys derived from the dataclasses, complete for what a kernel
reads; namespaces; the on-disk store."""

from __future__ import annotations

import dataclasses
import enum

import pytest

from rdusim.cache import RunCache, active_cache, content_key, using
from rdusim.compiler import compile_plan
from rdusim.compiler.plan import Kernel
from rdusim.config.arch import load_arch
from rdusim.config.model import load_model
from rdusim.config.policy import FusionPolicy
from rdusim.engine.rdu.cache import kernel_run
from rdusim.engine.rdu.hardware import SocketHw
from rdusim.engine.rdu.pipeline import simulate_kernel
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase

ARCH = load_arch("arch/sn40l.yaml")
TILES = 6


class E(enum.Enum):
    A = 1


@dataclasses.dataclass(frozen=True)
class P:
    x: float
    name: str = dataclasses.field(default="p", metadata={"key": False})


def test_content_key_types_order_and_names():
    assert content_key(1) != content_key(1.0) != content_key(True)
    assert content_key(0.0) != content_key(-0.0)
    assert content_key(float("nan")) == content_key(float("nan"))
    assert content_key({"a": 1, "b": 2}) == content_key({"b": 2, "a": 1})
    assert content_key((1, 2)) != content_key((2, 1))
    assert content_key(E.A) != content_key(1)
    assert content_key(P(1.0, "x")) == content_key(P(1.0, "y"))      # a name the computation never reads
    assert content_key(P(1.0)) != content_key(P(2.0))
    with pytest.raises(TypeError):
        content_key(object())


def test_get_or_compute_by_namespace_and_scope():
    cache = RunCache()
    calls = []
    f = lambda: calls.append(1) or len(calls)      # noqa: E731
    assert cache.get_or_compute("a", (P(1.0), 3), f) == 1
    assert cache.get_or_compute("a", (P(1.0, "other"), 3), f) == 1
    assert cache.get_or_compute("b", (P(1.0), 3), f) == 2
    assert cache.stats() == {"a": {"hits": 1, "misses": 1, "disk_hits": 0},
                             "b": {"hits": 0, "misses": 1, "disk_hits": 0}}
    assert cache.get(("step", 1), f) == 3 and cache.get(("step", 1), f) == 3
    with using(cache):
        assert active_cache() is cache
    assert active_cache() is not cache and active_cache(cache) is cache


def test_persisted_values_are_read_back_by_another_cache(tmp_path):
    one = RunCache(tmp_path)
    assert one.get_or_compute("x", (P(2.0), "k"), lambda: {"v": 1.5}) == {"v": 1.5}
    two = RunCache(tmp_path)
    assert two.get_or_compute("x", (P(2.0), "k"), lambda: pytest.fail("recomputed")) == {"v": 1.5}
    assert two.disk_hits["x"] == 1
    assert two.get_or_compute("x", (P(3.0), "k"), lambda: 7) == 7
    torn = next((tmp_path / "x").glob("*.pickle"))
    torn.write_bytes(b"\x80garbage")
    three = RunCache(tmp_path)
    assert three.get_or_compute("x", (P(2.0), "k"), lambda: 9) in (9, {"v": 1.5})


# ---- completeness: whatever changes a kernel's simulated run changes its key ----

def _kernels() -> list[Kernel]:
    cfg = load_model("llama2-7b")
    out: dict = {}
    for policy in FusionPolicy:
        for phase in (Phase.DECODE, Phase.PREFILL):
            g = build_model_graph(cfg, phase, 1, 64, tp=8, layers=1)
            for k in compile_plan(g, ARCH, policy, tiles=TILES).kernels:
                out.setdefault(k.signature, k)
    return list(out.values())


def _leaves(obj, path=()):
    """Paths to every numeric field of a frozen dataclass tree."""
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            yield from _leaves(v, path + (f.name,))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            yield path + (f.name,)


def _bumped(obj, path):
    v = getattr(obj, path[0])
    if len(path) == 1:
        return dataclasses.replace(obj, **{path[0]: type(v)(v * 2 + 1) if isinstance(v, int) else v * 1.37 + 1e-7})
    return dataclasses.replace(obj, **{path[0]: _bumped(v, path[1:])})


KERNELS = _kernels()
BASE_HW = SocketHw.of(ARCH)
BASE_RUNS = [simulate_kernel(k, BASE_HW, TILES) for k in KERNELS]


@pytest.mark.parametrize("path", [".".join(p) for p in _leaves(ARCH)])
def test_every_machine_field_a_kernel_reads_is_in_its_key(path):
    try:
        hw = SocketHw.of(_bumped(ARCH, tuple(path.split("."))))
    except (ValueError, TypeError):
        pytest.skip("not a number this spec accepts bumped")
    for k, base in zip(KERNELS, BASE_RUNS):
        if simulate_kernel(k, hw, TILES) != base:
            assert content_key(hw.for_kernel(k)) != content_key(BASE_HW.for_kernel(k)), (path, k.name)


def test_every_kernel_field_the_pipeline_reads_is_in_its_key():
    changed = 0
    for k, base in zip(KERNELS, BASE_RUNS):
        for si, stage in enumerate(k.stages):
            paths = [p for p in _leaves(stage) if p[0] not in ("streams", "collective")]
            variants = [_bumped(stage, p) for p in paths]
            variants += [dataclasses.replace(stage, streams=tuple(_bumped(st, p) if j == i else st
                                                                  for j, st in enumerate(stage.streams)))
                         for i, s0 in enumerate(stage.streams) for p in _leaves(s0)]
            for v in variants:
                other = dataclasses.replace(k, stages=k.stages[:si] + (v,) + k.stages[si + 1:])
                try:
                    run = simulate_kernel(other, BASE_HW, TILES)
                except (ValueError, IndexError, ZeroDivisionError):
                    continue
                if run != base:
                    changed += 1
                    assert other.signature != k.signature
        renamed = dataclasses.replace(k, name="x", ops=tuple("y" for _ in k.ops), layer=7)
        assert renamed.signature == k.signature
        assert simulate_kernel(renamed, BASE_HW, TILES) == base
    assert changed > 20


def test_a_sweep_over_ddr_reuses_hbm_kernels_through_the_cache():
    cache = RunCache()
    slow_ddr = SocketHw.of(_bumped(ARCH, ("socket", "ddr", "bandwidth_bytes_per_s")))
    for k in KERNELS:
        kernel_run(cache, k, BASE_HW, TILES)
    runs = [kernel_run(cache, k, slow_ddr, TILES) for k in KERNELS]
    assert all(hit for _, hit in runs)          # none of these kernels touches DDR
    assert [r for r, _ in runs] == BASE_RUNS


def test_the_machine_check_sees_changed_runs():
    moved = [p for p in ("socket.hbm.bandwidth_bytes_per_s", "socket.agcu.bandwidth_bytes_per_s",
                         "links.p2p.bandwidth_bytes_per_s", "socket.pmu.bandwidth_bytes_per_s")
             if any(simulate_kernel(k, SocketHw.of(_bumped(ARCH, tuple(p.split(".")))), TILES) != b
                    for k, b in zip(KERNELS, BASE_RUNS))]
    assert len(moved) == 4, moved


def test_a_plan_depends_only_on_the_compile_target():
    from rdusim.compiler.target import CompileTarget

    g = build_model_graph(load_model("llama2-7b"), Phase.DECODE, 1, 64, tp=8, layers=1)
    other = _bumped(_bumped(ARCH, ("socket", "ddr", "bandwidth_bytes_per_s")), ("links", "p2p", "latency_s"))
    assert content_key(CompileTarget.of(other)) == content_key(CompileTarget.of(ARCH))
    assert compile_plan(g, other, FusionPolicy.FUSED, tiles=TILES) == compile_plan(g, ARCH, FusionPolicy.FUSED,
                                                                                  tiles=TILES)
    for path in (("socket", "pmu", "capacity_bytes"), ("socket", "ddr", "capacity_bytes")):
        assert content_key(CompileTarget.of(_bumped(ARCH, path))) != content_key(CompileTarget.of(ARCH)), path
