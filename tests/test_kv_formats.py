"""INT8 and INT4 KV caches (issue 22 item 2): sized with their scales, read by attention
at that size on every family, bad group sizes rejected."""

import json

import pytest

from rdusim.cli import main
from rdusim.config.formats import Formats
from rdusim.config.model import load_model
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase
from rdusim.graph.tensor import DType, TensorRole


@pytest.mark.parametrize("kv,group,per_head", [(DType.INT8, None, 128 + 2), (DType.INT4, None, 64 + 2),
                                               (DType.INT4, 32, 64 + 4 * 2), (DType.FP8_E4M3, None, 128)])
def test_kv_bytes_by_hand(kv, group, per_head):
    cfg = load_model("llama3-70b").with_formats(Formats(kv_cache=kv, kv_group_size=group))
    assert cfg.kv_cache_bytes_per_token == 2 * 80 * 8 * per_head
    assert cfg.kv_cache_bytes_per_rank(1000, 4) == 2 * 80 * 2 * per_head * 1000
    g = build_model_graph(cfg, Phase.DECODE, 3, 500, tp=1, layers=1)
    read = sum(t.nbytes for op in g.ops for t in op.inputs if t.role == TensorRole.KV_CACHE)
    assert read == 2 * 3 * 8 * 501 * per_head       # K and V of one layer over context + the new token


def _run(tmp_path, kv):
    out = tmp_path / kv
    args = ["run", "workloads/tpu_v5e_llama3_70b.yaml", "--out", str(out), "--set", "output_tokens=4",
            "--set", f"formats.kv_cache={kv}", "--set", "prompt_tokens=4096",
            "--set", "platforms.sn40l={arch: arch/sn40l.yaml, tp: 8}"]
    assert main(args) == 0
    return json.loads((out / "results.json").read_text())["metrics"]


def test_narrow_kv_shrinks_and_speeds_decode_on_every_family(tmp_path):
    base, i8, i4 = (_run(tmp_path, kv) for kv in ("bf16", "int8", "int4"))
    for p in ("v5e", "dgx_h100", "sn40l"):
        kb = [m[f"model.{p}.kv_bytes_per_device"] for m in (base, i8, i4)]
        assert kb[0] > kb[1] > kb[2] and kb[1] == pytest.approx(kb[0] * 130 / 256)
        # fewer bytes to read; int4 no slower than int8 (its dequantisation costs the same FLOPs per
        # element, which can bound a fused attention kernel on both: the DGX H100 here)
        assert base[f"model.{p}.tpot_s"] > i8[f"model.{p}.tpot_s"] >= i4[f"model.{p}.tpot_s"]


def test_kv_group_must_divide_head_dim(tmp_path, capsys):
    rc = main(["run", "workloads/tpu_v5e_llama3_70b.yaml", "--out", str(tmp_path / "x"),
               "--set", "formats.kv_cache=int4", "--set", "formats.kv_group_size=48"])
    assert rc == 2 and "formats.kv_group_size" in capsys.readouterr().err
