"""Strict conversion of parsed YAML into frozen dataclasses.

Unknown keys are rejected, missing keys named, types and ranges checked, and
every error is an :class:`InputError` naming file, dotted key, expected, found.
In *sourced* mode (hardware specs) every number must be written as
``{value: <number>, source: "<where it comes from>"}``; the sources are
collected by dotted key so reports can cite them. A fitted number may add
``fitted_to: [<reference id>, ...]`` (the references/ ids it was fitted to),
collected by dotted key in ``Ctx.fitted``.

Module-level state: ``_SHAPES`` memoises each dataclass's field table (a pure function of
the type), filled on first use; nothing else is kept between calls.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping

from rdusim.errors import InputError
from rdusim.config.limits import UNIT_RANGES
from rdusim.config.limits import MIN_MAGNITUDE


@dataclass
class Ctx:
    """Where the data came from, and what was learned while converting it."""

    file: str
    sourced: bool = False
    sources: dict[str, str] = field(default_factory=dict)
    fitted: dict[str, tuple[str, ...]] = field(default_factory=dict)   # dotted key -> reference ids


# no number in a spec or workload may exceed this (a zettabyte, a zettaFLOP/s): larger values
# are typing mistakes, and would overflow the engines' arithmetic
MAX_MAGNITUDE = 1e21


def positive(**extra: Any) -> dict:
    return {"gt": 0, **extra}


def build(cls: type, data: Any, ctx: Ctx, path: str = "") -> Any:
    """Convert ``data`` (parsed YAML) into an instance of dataclass ``cls``."""
    return _convert(cls, data, ctx, path, {})


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _convert(tp: Any, data: Any, ctx: Ctx, path: str, meta: Mapping) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if data is None and len(inner) < len(args):
            return None
        if len(inner) == 1:
            return _convert(inner[0], data, ctx, path, meta)
        errors = []
        for a in inner:
            try:
                return _convert(a, data, ctx, path, meta)
            except InputError as exc:
                errors.append(exc.expected)
        raise InputError(ctx.file, path, " or ".join(errors), data)
    if dataclasses.is_dataclass(tp):
        return _dataclass(tp, data, ctx, path)
    if origin is tuple:
        if not isinstance(data, (list, tuple)):
            raise InputError(ctx.file, path, "a list", data)
        item = args[0]
        return tuple(_convert(item, v, ctx, f"{path}[{i}]", meta) for i, v in enumerate(data))
    if origin in (dict, Mapping, typing.Mapping, collections.abc.Mapping) or tp is dict:
        if not isinstance(data, Mapping):
            raise InputError(ctx.file, path, "a mapping", data)
        ktype, vtype = args if args else (str, Any)
        out = {}
        for k, v in data.items():
            if not isinstance(k, str):
                raise InputError(ctx.file, path, "string keys", k)
            out[k] = v if vtype is Any else _convert(vtype, v, ctx, _join(path, k), meta)
        return types.MappingProxyType(out)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        values = [m.value for m in tp]
        if ctx.sourced and isinstance(data, Mapping) and set(data) == {"value", "source"}:   # a sourced choice
            if not isinstance(data["source"], str) or not data["source"].strip():
                raise InputError(ctx.file, _join(path, "source"), "a non-empty citation string", data["source"])
            ctx.sources[path] = data["source"]
            data, path = data["value"], _join(path, "value")
        for m in tp:
            if data == m.value:
                return m
        raise InputError(ctx.file, path, f"one of {values}", data)
    if tp is bool:
        if not isinstance(data, bool):
            raise InputError(ctx.file, path, "true or false", data)
        return data
    if tp is str:
        if not isinstance(data, str):
            raise InputError(ctx.file, path, "a string", data)
        return data
    if tp in (int, float):
        return _number(tp, data, ctx, path, meta)
    if tp is Any:
        return data
    raise TypeError(f"strict.build cannot convert to {tp!r} at {path}")  # programming error


def _number(tp: type, data: Any, ctx: Ctx, path: str, meta: Mapping) -> Any:
    if ctx.sourced:
        if not isinstance(data, Mapping) or not {"value", "source"} <= set(data) <= {"value", "source", "fitted_to"}:
            raise InputError(ctx.file, path, "{value: <number>, source: <citation>} (and, if fitted, "
                             "fitted_to: [<reference id>, ...])", data)
        source = data["source"]
        if not isinstance(source, str) or not source.strip():
            raise InputError(ctx.file, _join(path, "source"), "a non-empty citation string", source)
        ctx.sources[path] = source
        if "fitted_to" in data:
            ctx.fitted[path] = _reference_ids(data["fitted_to"], ctx, _join(path, "fitted_to"))
        data = data["value"]
        path = _join(path, "value")
    if isinstance(data, str):
        try:
            data = float(data)
        except ValueError:
            raise InputError(ctx.file, path, _unit_hint(tp, path), data) from None
    if isinstance(data, bool) or not isinstance(data, (int, float)):
        raise InputError(ctx.file, path, _unit_hint(tp, path), data)
    if not math.isfinite(data):
        raise InputError(ctx.file, path, "a finite number", data)
    if abs(data) > MAX_MAGNITUDE and "le" not in meta:    # a field with its own limit names that
        raise InputError(ctx.file, path, f"a number of magnitude at most {MAX_MAGNITUDE:g} (larger than any "
                         "quantity rdusim models)", data)
    given = data
    if tp is int:
        if float(data) != int(data):
            raise InputError(ctx.file, path, "an integer", data)
        data = int(data)
    else:
        data = float(data)
    if "gt" in meta and not data > meta["gt"]:
        raise InputError(ctx.file, path, f"a number > {meta['gt']}", given)
    if "ge" in meta and not data >= meta["ge"]:
        raise InputError(ctx.file, path, f"a number >= {meta['ge']}", given)
    if "le" in meta and not data <= meta["le"]:
        raise InputError(ctx.file, path, f"a number <= {meta['le']}", given)
    _physical(data, ctx, path, meta)
    return data


def _reference_ids(data: Any, ctx: Ctx, path: str) -> tuple[str, ...]:
    """``fitted_to``: a non-empty list of distinct reference ids (rdusim validate counts them)."""
    if not isinstance(data, (list, tuple)) or not data:
        raise InputError(ctx.file, path, "a non-empty list of reference ids", data)
    for i, ref in enumerate(data):
        if not isinstance(ref, str) or not ref.strip() or ref != ref.strip():
            raise InputError(ctx.file, f"{path}[{i}]", "a reference id (a non-empty string)", ref)
        if ref in data[:i]:
            raise InputError(ctx.file, f"{path}[{i}]", "each reference id once", ref)
    return tuple(data)


def _leaf(path: str) -> str:
    """The field name of a dotted key (``socket.ddr.bandwidth_bytes_per_s.value`` ->
    ``bandwidth_bytes_per_s``; ``rates_per_s[2]`` -> ``rates_per_s``)."""
    parts = path.split(".") if path else [""]
    leaf = parts[-2] if parts[-1] == "value" and len(parts) > 1 else parts[-1]
    return leaf.split("[", 1)[0]


def _unit_of(path: str) -> tuple[float, float, str] | None:
    leaf = _leaf(path)
    for suffix, low, high, unit in UNIT_RANGES:
        if leaf.endswith(suffix):
            return low, high, unit
    return None


def _physical(data: float, ctx: Ctx, path: str, meta: Mapping) -> None:
    """A number that is not 0 lies in its unit's physical range (rdusim.config.limits); a
    field with its own upper limit keeps that one."""
    if data == 0:
        return
    unit = _unit_of(path)
    low, high, what = unit if unit is not None else (MIN_MAGNITUDE, MAX_MAGNITUDE, "")
    if "le" in meta:
        high = meta["le"]
    if low <= abs(data) <= high:
        return
    unit_text = f" {what}" if what else ""
    zero = "0 or " if "gt" not in meta else ""
    raise InputError(ctx.file, path, f"{zero}a number{unit_text} from {low:g} to {high:g} (the physical range "
                     "rdusim accepts for it)", data)


def _unit_hint(tp: type, path: str) -> str:
    kind = "an integer" if tp is int else "a number"
    unit = _unit_of(path)
    if unit is not None and not unit[2].startswith("("):
        return f"{kind} {unit[2]} (plain number, no unit suffix)"
    return kind


_SHAPES: dict[type, tuple[dict, dict]] = {}


def _shape(cls: type) -> tuple[dict, dict]:
    """A spec class's resolved type hints and its settable fields (class metadata, worked
    out once per class: ``typing.get_type_hints`` is most of the cost of a small spec)."""
    got = _SHAPES.get(cls)
    if got is None:
        got = _SHAPES[cls] = (typing.get_type_hints(cls),
                              {f.name: f for f in dataclasses.fields(cls) if f.init and not f.metadata.get("internal")})
    return got


def _dataclass(cls: type, data: Any, ctx: Ctx, path: str) -> Any:
    if not isinstance(data, Mapping):
        raise InputError(ctx.file, path or "(top level)", f"a mapping for {cls.__name__}", data)
    hints, fields = _shape(cls)
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise InputError(ctx.file, _join(path, str(unknown[0])),
                         f"one of the keys {sorted(fields)}", f"unknown key {unknown[0]!r}")
    kwargs = {}
    for name, f in fields.items():
        key = _join(path, name)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise InputError(ctx.file, key, f"key {name!r} to be present", "it missing")
            continue
        kwargs[name] = _convert(hints[name], data[name], ctx, key, f.metadata)
    try:
        return cls(**kwargs)
    except ValueError as exc:  # __post_init__ cross-field checks raise ValueError(key, expected, found)
        if len(exc.args) == 3:
            k, expected, found = exc.args
            raise InputError(ctx.file, _join(path, k), expected, found) from None
        raise
