"""User-written operator graphs (YAML) -> OpGraph.

    name: my-block
    tensors:                      # tensors that enter from outside the graph
      x: {shape: [8, 1024], role: input}          # dtype defaults to bf16
      w: {shape: [1024, 4096], role: weight, density: 0.5}
    ops:                          # any order; each op produces one tensor named by `output`
      - {name: up, kind: linear, inputs: [x, w], output: h}
      - {name: act, kind: elementwise, inputs: [h], output: y, flops_per_element: 4}

Kinds and their extra keys: gemm (transpose_b), linear (transpose_w), elementwise
(flops_per_element), glu (act_flops), norm (rms; inputs: x then its parameters),
softmax, rotary, transpose (perm), reshape (shape), slice (axis, start, stop), concat
(axis), embedding (inputs: ids, table), reduce (shape), allreduce (ranks), allgather
(ranks, axis). Every op may also give ``tag`` and ``layer``. Errors name the dotted key
(``ops[3].kind``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping


from rdusim.config.yamlio import load_yaml
from rdusim.errors import InputError
from rdusim.graph import ops as O
from rdusim.graph.opgraph import OpGraph
from rdusim.graph.ops import ShapeError
from rdusim.graph.tensor import DType, Tensor, TensorRole
from rdusim.graph.toposort import lexicographic_order

_BOOL, _INT, _NUM, _INTS = "true or false", "an integer", "a number >= 0", "a list of positive integers"

# kind -> (constructor, number of inputs (None: one or more), {extra key: (kind of value, default)})
KINDS: dict[str, tuple[Any, int | None, dict[str, tuple[str, Any]]]] = {
    "gemm": (O.gemm, 2, {"transpose_b": (_BOOL, False)}),
    "linear": (O.linear, 2, {"transpose_w": (_BOOL, False)}),
    "elementwise": (O.elementwise, None, {"flops_per_element": (_NUM, 1.0)}),
    "glu": (O.glu, 1, {"act_flops": (_NUM, 4.0)}),
    "norm": (O.norm, None, {"rms": (_BOOL, True)}),
    "softmax": (O.softmax, 1, {}),
    "rotary": (O.rotary, 1, {}),
    "transpose": (O.transpose, 1, {"perm": (_INTS, None)}),
    "reshape": (O.reshape, 1, {"shape": (_INTS, None)}),
    "slice": (O.slice_, 1, {"axis": (_INT, None), "start": (_INT, None), "stop": (_INT, None)}),
    "concat": (O.concat, None, {"axis": (_INT, None)}),
    "embedding": (O.embedding, 2, {}),
    "reduce": (O.reduce, 1, {"shape": (_INTS, None)}),
    "allreduce": (O.allreduce, 1, {"ranks": (_INT, None)}),
    "allgather": (O.allgather, 1, {"ranks": (_INT, None), "axis": (_INT, -1)}),
}
_COMMON = {"name", "kind", "inputs", "output", "tag", "layer"}
_ROLES = {r.value: r for r in TensorRole if r not in (TensorRole.ACTIVATION, TensorRole.GRADIENT)}
_DTYPES = {d.value: d for d in DType}


def load_graph(path: str | Path) -> OpGraph:
    return graph_from_mapping(load_yaml(path), str(path))


def graph_from_mapping(data: Any, file: str) -> OpGraph:
    """Build and validate the graph described by parsed YAML ``data`` from ``file``."""
    _mapping(data, file, "(top level)", {"name", "tensors", "ops"}, required={"ops"})
    tensors = {name: _tensor(spec, file, f"tensors.{name}", name)
               for name, spec in _mapping(data.get("tensors", {}), file, "tensors").items()}
    raw_ops = data["ops"]
    if not isinstance(raw_ops, list) or not raw_ops:
        raise InputError(file, "ops", "a non-empty list of ops", raw_ops)
    specs = [_op_spec(op, file, f"ops[{i}]") for i, op in enumerate(raw_ops)]
    producer: dict[str, int] = {}
    names: set[str] = set()
    for i, s in enumerate(specs):
        if s["name"] in names:
            raise InputError(file, f"ops[{i}].name", "unique op names", f"a second op named {s['name']!r}")
        names.add(s["name"])
        out = s["output"]
        if out in tensors or out in producer:
            raise InputError(file, f"ops[{i}].output", "a tensor name not used before",
                             f"{out!r}, already {'declared under tensors' if out in tensors else 'produced'}")
        producer[out] = i
    edges = []
    for i, s in enumerate(specs):
        for j, t in enumerate(s["inputs"]):
            if t in producer:
                edges.append((producer[t], i))
            elif t not in tensors:
                raise InputError(file, f"ops[{i}].inputs[{j}]", "a tensor under `tensors` or an op's output",
                                 f"unknown tensor {t!r}")
    order = lexicographic_order(list(range(len(specs))), edges)
    if order is None:
        import networkx as nx     # only to name the cycle

        deps = nx.DiGraph()
        deps.add_nodes_from(range(len(specs)))
        deps.add_edges_from(edges)
        cycle = [specs[a]["name"] for a, _ in nx.find_cycle(deps)]
        raise InputError(file, "ops", "an acyclic graph", "a cycle " + " -> ".join(cycle + cycle[:1]))
    built = []
    for i in order:
        s = specs[i]
        ins = [tensors[t] for t in s["inputs"]]
        built.append(_construct(s, ins, file, f"ops[{i}]"))
        tensors[s["output"]] = built[-1].outputs[0]
    return OpGraph(str(data.get("name", Path(file).stem)), built, source=file)


def _mapping(data: Any, file: str, key: str, allowed: set[str] | None = None,
             required: set[str] = frozenset()) -> Mapping:
    if not isinstance(data, Mapping):
        raise InputError(file, key, "a mapping", data)
    where = "" if key == "(top level)" else f"{key}."
    for k in data:
        if allowed is not None and k not in allowed:
            raise InputError(file, f"{where}{k}", f"one of the keys {sorted(allowed)}", f"unknown key {k!r}")
    for k in sorted(required):
        if k not in data:
            raise InputError(file, f"{where}{k}", f"key {k!r} to be present", "it missing")
    return data


def _ints(v: Any, file: str, key: str, positive: bool = True) -> tuple[int, ...]:
    if not isinstance(v, list) or not v or any(isinstance(x, bool) or not isinstance(x, int)
                                                or (positive and x < 1) for x in v):
        raise InputError(file, key, _INTS if positive else "a list of integers", v)
    return tuple(v)


def _tensor(spec: Any, file: str, key: str, name: str) -> Tensor:
    spec = _mapping(spec, file, key, {"shape", "dtype", "role", "density"}, required={"shape", "role"})
    shape = _ints(spec["shape"], file, f"{key}.shape")
    role = _ROLES.get(spec["role"])
    if role is None:
        raise InputError(file, f"{key}.role", f"one of {sorted(_ROLES)}", spec["role"])
    dtype = _DTYPES.get(spec.get("dtype", "bf16"))
    if dtype is None:
        raise InputError(file, f"{key}.dtype", f"one of {sorted(_DTYPES)}", spec.get("dtype"))
    density = spec.get("density", 1.0)
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0 < density <= 1:
        raise InputError(file, f"{key}.density", "a fraction in (0, 1]", density)
    return Tensor(name, shape, dtype, role, float(density))


def _op_spec(op: Any, file: str, key: str) -> dict:
    op = _mapping(op, file, key, required={"name", "kind", "inputs", "output"})
    kind = op["kind"]
    if kind not in KINDS:
        raise InputError(file, f"{key}.kind", f"one of {sorted(KINDS)}", kind)
    _, n_in, extra = KINDS[kind]
    _mapping(op, file, key, _COMMON | set(extra))
    for k in ("name", "output"):
        if not isinstance(op[k], str) or not op[k]:
            raise InputError(file, f"{key}.{k}", "a non-empty string", op[k])
    inputs = op["inputs"]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
        raise InputError(file, f"{key}.inputs", "a non-empty list of tensor names", inputs)
    if n_in is not None and len(inputs) != n_in:
        raise InputError(file, f"{key}.inputs", f"{n_in} input tensor{'s' * (n_in > 1)} for {kind}", inputs)
    out = {"name": op["name"], "kind": kind, "inputs": inputs, "output": op["output"],
           "tag": op.get("tag", kind), "layer": op.get("layer", -1), "extra": {}}
    if not isinstance(out["tag"], str):
        raise InputError(file, f"{key}.tag", "a string", out["tag"])
    if isinstance(out["layer"], bool) or not isinstance(out["layer"], int):
        raise InputError(file, f"{key}.layer", _INT, out["layer"])
    for k, (what, default) in extra.items():
        if k not in op:
            if default is None:
                raise InputError(file, f"{key}.{k}", f"key {k!r} to be present for {kind}", "it missing")
            out["extra"][k] = default
            continue
        v = op[k]
        ok = {_BOOL: isinstance(v, bool), _INT: isinstance(v, int) and not isinstance(v, bool),
              _NUM: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0}.get(what)
        if what == _INTS:
            v = _ints(v, file, f"{key}.{k}", positive=(k != "perm"))
        elif not ok:
            raise InputError(file, f"{key}.{k}", what, v)
        out["extra"][k] = v
    return out


def _construct(s: dict, ins: list[Tensor], file: str, key: str):
    ctor = KINDS[s["kind"]][0]
    kw = {"tag": s["tag"], "layer": s["layer"]}
    e, name, out = s["extra"], s["name"], s["output"]
    try:
        match s["kind"]:
            case "elementwise" | "concat" | "norm":
                args = {"elementwise": (ins, out), "concat": (ins, e.get("axis"), out),
                        "norm": (ins[0], ins[1:], out)}[s["kind"]]
                extra = {k: v for k, v in e.items() if k != "axis"}
                return ctor(name, *args, **extra, **kw)
            case "transpose":
                return ctor(name, ins[0], e["perm"], out, **kw)
            case "reshape" | "reduce":
                return ctor(name, ins[0], e["shape"], out, **kw)
            case "slice":
                return ctor(name, ins[0], e["axis"], e["start"], e["stop"], out, **kw)
            case "allreduce":
                return ctor(name, ins[0], e["ranks"], out, **kw)
            case "allgather":
                return ctor(name, ins[0], e["ranks"], out, axis=e["axis"], **kw)
            case _:
                return ctor(name, *ins, out, **e, **kw)
    except (ShapeError, ValueError) as exc:
        raise InputError(file, key, f"operand shapes that fit a {s['kind']} op", str(exc)) from None
