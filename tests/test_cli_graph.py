"""`rdusim graph`: JSON contract, the 7B acceptance numbers, and exit 2 on every bad input."""

import json
from pathlib import Path

import pytest

from rdusim.cli import main
from rdusim.config.model import MODELS_DIR


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_llama2_7b_decode_acceptance(capsys):
    code, out, _ = _run(capsys, "graph", "llama2-7b", "--phase", "decode", "--batch", "1", "--seq", "4096", "--json")
    assert code == 0
    s = json.loads(out)
    for key in ("model", "phase", "batch", "seq", "params", "param_bytes", "flops", "bytes",
                "kv_cache_bytes_per_token", "ops"):
        assert key in s
    assert abs(s["params"] / 6.74e9 - 1) < 0.01
    assert s["param_bytes"] == 2 * s["params"]
    # 2 FLOPs per parameter for the weights (the embedding gather does none), plus attention
    # over the 4096-token context: 4 * layers * ctx * hidden
    attn = sum(r["flops"] for r in s["ops"] if r["tag"] in ("attn.score", "attn.context"))
    assert attn == pytest.approx(4 * 32 * 4097 * 4096)
    assert (s["flops"] - attn) / s["params"] == pytest.approx(2.0, abs=0.05)
    assert 1.9 < s["flops_per_param_per_token"] < 2.4
    assert s["kv_cache_bytes_per_token"] == 2 * 32 * 4096 * 2
    assert s["flops"] == pytest.approx(sum(r["flops"] for r in s["ops"]))
    assert {r["name"][:3] for r in s["ops"] if r["layer"] == 5} == {"L5."}


def test_table_output_and_model_path(capsys):
    code, out, _ = _run(capsys, "graph", str(Path(MODELS_DIR) / "mistral-7b.yaml"), "--phase", "prefill",
                        "--seq", "256", "--tp", "8")
    assert code == 0 and "mistral-7b prefill" in out and "parameters" in out


def test_train_phase_runs(capsys):
    code, out, _ = _run(capsys, "graph", "llama2-7b", "--phase", "train", "--seq", "64", "--json")
    assert code == 0 and json.loads(out)["phase"] == "train"


def _bad_model(tmp_path, edit) -> str:
    text = (Path(MODELS_DIR) / "llama2-7b.yaml").read_text()
    p = tmp_path / "m.yaml"
    p.write_text(edit(text))
    return str(p)


@pytest.mark.parametrize("edit,key", [
    (lambda t: t.replace("hidden_size: 4096", "hidden_size: 4100"), "hidden_size"),
    (lambda t: t + "rope_scaling: 2\n", "rope_scaling"),
    (lambda t: t.replace("num_hidden_layers: 32", "num_hidden_layers: thirty-two"), "num_hidden_layers"),
    (lambda t: t.replace("num_key_value_heads: 32", "num_key_value_heads: 5"), "num_key_value_heads"),
    (lambda t: t.replace("norm: rmsnorm", "norm: batchnorm"), "norm"),
    (lambda t: t.replace("hidden_size: 4096", "hidden_size: [4096"), ""),        # malformed YAML
    (lambda t: t.replace("vocab_size: 32000\n", ""), "vocab_size"),
])
def test_bad_model_file_exits_2_naming_file_and_key(tmp_path, capsys, edit, key):
    path = _bad_model(tmp_path, edit)
    code, out, err = _run(capsys, "graph", path, "--phase", "decode", "--seq", "16")
    assert code == 2 and out == ""
    assert path in err and key in err and "Traceback" not in err


def test_missing_model_exits_2(capsys):
    code, _, err = _run(capsys, "graph", "llama9-1t", "--phase", "decode")
    assert code == 2 and "llama9-1t" in err and "model" in err
    code, _, err = _run(capsys, "graph", "nowhere/m.yaml", "--phase", "decode")
    assert code == 2 and "nowhere/m.yaml" in err


@pytest.mark.parametrize("flag,value", [("--tp", "3"), ("--batch", "0"), ("--seq", "-4")])
def test_bad_request_exits_2(capsys, flag, value):
    code, _, err = _run(capsys, "graph", "llama2-70b", "--phase", "decode", flag, value)
    assert code == 2 and "command line" in err and flag.lstrip("-") in err


def test_llava_prompt_shorter_than_image_tokens_exits_2(capsys):
    code, _, err = _run(capsys, "graph", "llava1.5-7b", "--phase", "prefill", "--seq", "500")
    assert code == 2 and "seq" in err and "576" in err


def test_bad_arch_unit_exits_2(tmp_path, capsys):
    """A unit string where a plain number of bytes per second is expected."""
    src = Path(MODELS_DIR).parent / "arch" / "sn40l.yaml"
    text = src.read_text()
    line = next(l for l in text.splitlines() if "bandwidth_bytes_per_s" in l)
    p = tmp_path / "arch.yaml"
    p.write_text(text.replace(line, line.split("{")[0] + '{value: "200 GB/s", source: "x"}', 1))
    code, _, err = _run(capsys, "arch", "show", str(p))
    assert code == 2 and str(p) in err and "bandwidth_bytes_per_s" in err and "bytes per second" in err


GRAPH = """
name: tiny-mlp
tensors:
  x: {shape: [4, 16], role: input}
  w1: {shape: [16, 64], role: weight}
  w2: {shape: [64, 16], role: weight}
ops:
  - {name: up, kind: linear, inputs: [x, w1], output: h}
  - {name: act, kind: elementwise, inputs: [h], output: a, flops_per_element: 4}
  - {name: down, kind: linear, inputs: [a, w2], output: y}
"""


def test_custom_graph_file(tmp_path, capsys):
    p = tmp_path / "g.yaml"
    p.write_text(GRAPH)
    code, out, _ = _run(capsys, "graph", str(p), "--json")
    s = json.loads(out)
    assert code == 0 and s["model"] == "tiny-mlp" and s["params"] == 2 * 16 * 64
    assert s["flops"] == 2 * (2 * 4 * 16 * 64) + 4 * 4 * 64
    # fused: x, both weights and y cross the boundary; h and a stay on chip
    assert s["fused_boundary_bytes"] == 2 * (4 * 16 + 2 * 16 * 64 + 4 * 16)
    code, out, _ = _run(capsys, "graph", str(p))
    assert code == 0 and "tiny-mlp: 3 ops" in out


@pytest.mark.parametrize("old,new,key", [
    ("kind: elementwise", "kind: conv2d", "ops[1].kind"),
    ("w2: {shape: [64, 16]", "w2: {shape: [32, 16]", "ops[2]"),                  # shape mismatch
    ("inputs: [x, w1], output: h", "inputs: [y, w1], output: h", "ops"),         # cycle up -> act -> down -> up
    ("name: act", "name: up", "ops[1].name"),
])
def test_bad_custom_graph_exits_2(tmp_path, capsys, old, new, key):
    p = tmp_path / "g.yaml"
    text = GRAPH.replace(old, new)
    if key == "ops":
        text = text.replace("x: {shape: [4, 16]", "x0: {shape: [4, 16]")
    p.write_text(text)
    code, out, err = _run(capsys, "graph", str(p))
    assert code == 2 and out == "" and f"{p}: {key}:" in err and "Traceback" not in err


def test_model_without_phase_exits_2(capsys):
    code, _, err = _run(capsys, "graph", "llama2-7b")
    assert code == 2 and "--phase" in err
