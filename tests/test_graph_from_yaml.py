"""User-written graphs: a valid one builds; every mistake is an InputError naming the key."""

import textwrap

import pytest
import yaml

from rdusim.errors import InputError
from rdusim.graph.from_yaml import graph_from_mapping, load_graph
from rdusim.graph.ops import OpKind

GOOD = """
name: block
tensors:
  x: {shape: [8, 64], role: input}
  w: {shape: [64, 256], role: weight}
  g: {shape: [64], role: weight}
ops:
  - {name: act, kind: elementwise, inputs: [h], output: y, flops_per_element: 4}
  - {name: up, kind: linear, inputs: [n, w], output: h, tag: mlp.up, layer: 0}
  - {name: ln, kind: norm, inputs: [x, g], output: n, rms: true}
"""


def _load(text):
    return yaml.safe_load(textwrap.dedent(text))


def test_good_graph_builds_in_dependency_order():
    g = graph_from_mapping(_load(GOOD), "g.yaml")
    assert [o.name for o in g.ops] == ["ln", "up", "act"]
    assert g.op("up").kind == OpKind.GEMM and g.op("up").flops == 2 * 8 * 64 * 256
    assert g.op("up").tag == "mlp.up" and g.op("up").layer == 0
    assert g.params == 64 * 256 + 64


def test_load_graph_from_file(tmp_path):
    p = tmp_path / "g.yaml"
    p.write_text(GOOD)
    assert len(load_graph(p)) == 3


def _mutate(path, value):
    data = _load(GOOD)
    node = data
    for k in path[:-1]:
        node = node[k]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


@pytest.mark.parametrize("path,value,key,found", [
    (["ops", 0, "kind"], "conv3d", "ops[0].kind", "conv3d"),
    (["tensors", "w", "shape"], [32, 256], "ops[1]", "64 != 32"),             # shape mismatch
    (["ops", 0, "inputs"], ["nope"], "ops[0].inputs[0]", "nope"),
    (["ops", 2, "name"], "act", "ops[2].name", "act"),                        # duplicate op name
    (["ops", 2, "output"], "x", "ops[2].output", "x"),                        # clashes with an input
    (["ops", 0, "flops_per_element"], "many", "ops[0].flops_per_element", "many"),
    (["ops", 0, "colour"], "red", "ops[0].colour", "colour"),
    (["ops", 1, "output"], KeyError, "ops[1].output", "missing"),
    (["tensors", "x", "shape"], [8, 0], "tensors.x.shape", "0"),
    (["tensors", "x", "role"], "activation", "tensors.x.role", "activation"),
    (["tensors", "w", "dtype"], "fp8", "tensors.w.dtype", "fp8"),
    (["tensors", "w", "density"], 1.5, "tensors.w.density", "1.5"),
    (["ops"], [], "ops", "[]"),
    (["extra"], 1, "extra", "extra"),
])
def test_errors_name_file_and_key(path, value, key, found):
    with pytest.raises(InputError) as err:
        graph_from_mapping(_mutate(path, value), "g.yaml")
    assert err.value.file == "g.yaml" and err.value.key == key
    assert found in str(err.value)


def test_cycle_is_reported_with_its_ops():
    data = _load(GOOD)
    data["ops"][2]["inputs"] = ["y", "g"]   # ln reads act's output: ln -> up -> act -> ln
    data["tensors"]["g"]["shape"] = [256]
    with pytest.raises(InputError) as err:
        graph_from_mapping(data, "g.yaml")
    assert err.value.key == "ops" and "cycle" in str(err.value) and "act" in str(err.value)


@pytest.mark.parametrize("op", [
    {"name": "t", "kind": "transpose", "inputs": ["x"], "output": "z", "perm": [0, 0]},
    {"name": "r", "kind": "reshape", "inputs": ["x"], "output": "z", "shape": [7, 3]},
    {"name": "s", "kind": "slice", "inputs": ["x"], "output": "z", "axis": 1, "start": 0, "stop": 99},
    {"name": "a", "kind": "allreduce", "inputs": ["x"], "output": "z", "ranks": 0},
    {"name": "c", "kind": "concat", "inputs": ["x", "w"], "output": "z", "axis": 0},
    {"name": "m", "kind": "gemm", "inputs": ["x"], "output": "z"},
])
def test_bad_shapes_and_arities(op):
    data = _load(GOOD)
    data["ops"] = [op]
    with pytest.raises(InputError) as err:
        graph_from_mapping(data, "g.yaml")
    assert err.value.key.startswith("ops[0]")


def test_every_kind_builds():
    data = _load("""
    tensors:
      x: {shape: [2, 4, 8], role: input}
      w: {shape: [8, 8], role: weight}
      ids: {shape: [2, 4], role: input, dtype: fp32}
      tab: {shape: [100, 8], role: weight}
    ops:
      - {name: e, kind: embedding, inputs: [ids, tab], output: e}
      - {name: l, kind: linear, inputs: [e, w], output: l}
      - {name: lt, kind: linear, inputs: [l, w], output: lt, transpose_w: true}
      - {name: g, kind: gemm, inputs: [lt, x], output: g, transpose_b: true}
      - {name: s, kind: softmax, inputs: [g], output: s}
      - {name: r, kind: rotary, inputs: [x], output: r}
      - {name: u, kind: glu, inputs: [r], output: u, act_flops: 8}
      - {name: c, kind: concat, inputs: [u, u], output: c, axis: 2}
      - {name: t, kind: transpose, inputs: [c], output: t, perm: [0, 2, 1]}
      - {name: sl, kind: slice, inputs: [t], output: sl, axis: 1, start: 0, stop: 4}
      - {name: rs, kind: reshape, inputs: [sl], output: rs, shape: [32]}
      - {name: rd, kind: reduce, inputs: [rs], output: rd, shape: [1]}
      - {name: ar, kind: allreduce, inputs: [s], output: ar, ranks: 4}
      - {name: ag, kind: allgather, inputs: [ar], output: ag, ranks: 4, axis: 0}
    """)
    g = graph_from_mapping(data, "all.yaml")
    assert len(g) == 14 and g.op("ag").outputs[0].shape == (8, 4, 4)
