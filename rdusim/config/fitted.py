"""Fitted numbers of the shipped specs, read from their ``fitted_to`` keys.

A number of an arch or stack file that was fitted to published numbers says which, by
reference id (``references/*.yaml``)::

    efficiency: {value: 0.85, source: "fitted to ... by benchmarks/nemo_h100_table.py --fit",
                 fitted_to: [nemo.llama2-7b.h100.tp1.bs1, ...]}

The strict parser (:mod:`rdusim.config.strict`) checks the key's shape and collects it;
this module reads every shipped arch and stack file that way, so ``rdusim validate`` can
say how many parameters were fitted to which references.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from rdusim.config.strict import Ctx, build
from rdusim.config.yamlio import load_yaml
from rdusim.errors import InputError
from rdusim.config.stack import StackSpec
from rdusim.config.arch import SCHEMAS
from rdusim.config.stack import release_mapping  # and only its own added terms are its numbers

SPEC_DIRS = ("arch", "stacks")     # the folders of files whose numbers may carry fitted_to


@dataclass(frozen=True)
class FittedParameter:
    file: str                       # the spec file, relative to the data root where it lies under it
    key: str                        # dotted key of the number in that file
    value: Any
    source: str
    fitted_to: tuple[str, ...]      # reference ids

    @property
    def label(self) -> str:
        return f"{self.file} {self.key}"

    @property
    def identity(self) -> tuple:
        """A number copied into a variant of its machine (same key, value and references,
        e.g. arch/dgx_h100_pcie_measured.yaml) is the same fitted parameter."""
        return self.key, self.value, self.fitted_to


def _spec_class(data: Any, file: str, folder: str) -> type:
    if folder == "stacks":
        return StackSpec
    kind = data.get("kind") if isinstance(data, Mapping) else None
    kinds = {k.value: schema for k, schema in SCHEMAS.items()}
    if kind not in kinds:
        raise InputError(file, "kind", f"one of {sorted(kinds)}", kind)
    return kinds[kind]


def fitted_in_file(path: Path, folder: str, root: Path) -> list[FittedParameter]:
    """The fitted numbers of one arch (``folder="arch"``) or stack (``"stacks"``) file."""
    raw = load_yaml(path)
    data, own = raw, None
    if folder == "stacks":                 # a release (base: + added:) is read merged over its base,
        data = release_mapping(raw, str(path))
        if isinstance(raw, Mapping) and "base" in raw:
            own = tuple(f"added.{term}." for term in (raw.get("added") or {}))
    ctx = Ctx(file=str(path), sourced=True)
    build(_spec_class(data, str(path), folder), data, ctx)
    try:
        name = str(path.relative_to(root))
    except ValueError:
        name = str(path)
    out = []
    for key, refs in ctx.fitted.items():
        if own is not None and not key.startswith(own):
            continue
        value = _lookup(data, key)
        out.append(FittedParameter(name, key, value, ctx.sources[key], refs))
    return out


def _lookup(data: Any, key: str) -> Any:
    node = data
    for part in key.split("."):
        name, _, index = part.partition("[")
        if name:
            node = node[name]
        if index:
            node = node[int(index.rstrip("]"))]
    return node["value"]


def fitted_parameters(root: Path, folders: Iterable[str] = SPEC_DIRS) -> list[FittedParameter]:
    """Every fitted number of the spec files under ``root/<folder>/*.yaml``, in file order."""
    out: list[FittedParameter] = []
    for folder in folders:
        for path in sorted((root / folder).glob("*.yaml")):
            out += fitted_in_file(path, folder, root)
    return out
