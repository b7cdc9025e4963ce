"""Model-run rows: ``model.<platform>[.<scope>].<metric>``.

``scope`` is the plain run (:attr:`ModelScope.RUN`, no segment), speculative decoding
(``spec``), a pipelined cluster platform (``pp``) MoE expert offload (``offload``) or a machine resized per weight format (``scaling``). ``metric`` may be dotted
(``breakdown.step.compute_s``, ``memory.weights_bytes``, ``decode.allreduce_s``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Mapping, Optional

from rdusim.rows.base import Interval, Value, check_ci, leaf, name, read_family

PREFIX = "model."


class ModelScope(enum.Enum):
    RUN = ""
    SPEC = "spec"
    PP = "pp"
    OFFLOAD = "offload"
    SCALING = "scaling"


_SCOPES = {s.value: s for s in ModelScope if s.value}


@dataclass(frozen=True)
class ModelRow:
    platform: str
    scope: ModelScope
    metric: str
    value: Value
    ci: Interval = None

    def __post_init__(self):
        name(self.platform, "platform")
        leaf(self.metric)
        check_ci(self.ci)
        if not isinstance(self.scope, ModelScope):
            raise ValueError(f"scope must be a ModelScope, got {self.scope!r}")
        if self.scope is ModelScope.RUN and self.metric.split(".", 1)[0] in _SCOPES:
            raise ValueError(f"a plain model metric cannot start with a scope name: {self.metric!r}")

    @property
    def breakdown_part(self) -> Optional[str]:
        """``compute`` for ``breakdown.compute_s`` (the whole-request split), else None."""
        head, _, rest = self.metric.partition(".")
        if head == "breakdown" and "." not in rest and rest.endswith("_s") and len(rest) > 2:
            return rest[:-2]
        return None

    def key(self) -> str:
        if self.scope is ModelScope.RUN:
            return f"model.{self.platform}.{self.metric}"
        return f"model.{self.platform}.{self.scope.value}.{self.metric}"


def parse(key: str, value: Value, ci: Interval = None) -> Optional[ModelRow]:
    """The row of ``key`` (None: not a model key of a known shape)."""
    try:
        return _parse(key, value, ci) if key.startswith(PREFIX) else None
    except ValueError:
        return None


def _parse(key: str, value: Value, ci: Interval) -> Optional[ModelRow]:
    parts = key.split(".")
    if len(parts) < 3 or "" in parts:
        return None
    scope = _SCOPES.get(parts[2]) if len(parts) > 3 else None
    if scope is not None:
        return ModelRow(parts[1], scope, ".".join(parts[3:]), value, ci)
    if parts[2] in _SCOPES:
        return None
    return ModelRow(parts[1], ModelScope.RUN, ".".join(parts[2:]), value, ci)


def from_metrics(metrics: Mapping[str, Value]) -> list[ModelRow]:
    return read_family(metrics, PREFIX, parse)


def rows(platform: str, scope: ModelScope, values: Mapping[str, Value]) -> list[ModelRow]:
    return [ModelRow(platform, scope, m, v) for m, v in values.items()]
