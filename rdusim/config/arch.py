"""Load a machine description (arch/*.yaml) into its family's schema.

``SCHEMAS`` is the schema half of the family registration (kind -> schema class); the
engine half is ``rdusim.engine.families.FAMILIES``. Every schema answers the machine
interface (:class:`rdusim.config.machine.Machine`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Union

from rdusim.config.arch_common import ArchKind
from rdusim.config.arch_gpu import GpuArch
from rdusim.config.arch_rdu import RduArch
from rdusim.config.arch_tpu import TpuArch
from rdusim.config.strict import Ctx, build
from rdusim.config.yamlio import apply_overrides, load_yaml
from rdusim.errors import InputError

ArchSpec = Union[RduArch, GpuArch, TpuArch]
# the registration of every family's schema: kind -> schema class
SCHEMAS: dict[ArchKind, type] = {s.KIND: s for s in (RduArch, GpuArch, TpuArch)}


def arch_from_mapping(data: Any, file: str) -> ArchSpec:
    """Build a spec from parsed YAML. Every number must be ``{value, source}``."""
    if not isinstance(data, dict):
        raise InputError(file, "(top level)", "a mapping", data)
    kinds = [k.value for k in ArchKind]
    kind = data.get("kind")
    if kind not in kinds:
        raise InputError(file, "kind", f"one of {kinds}", kind)
    ctx = Ctx(file=file, sourced=True)
    spec = build(SCHEMAS[ArchKind(kind)], data, ctx)
    return dataclasses.replace(spec, sources=MappingProxyType(dict(ctx.sources)))


def load_arch(path: str | Path, overrides: Iterable[tuple[str, Any]] = ()) -> ArchSpec:
    """Read an arch file, apply dotted overrides (relative to the file's top), build the spec."""
    file = str(path)
    raw = apply_overrides(load_yaml(path), overrides, file, sourced=True)
    return arch_from_mapping(raw, file)
