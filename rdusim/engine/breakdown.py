"""Latency breakdown categories shared by engines, studies and reports."""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

# compute / memory: kernels bound by each; launch: gaps between kernels and kernel floors;
# collective: all-reduces and all-gathers; host: the serving stack's host/runtime work
BREAKDOWN_KEYS = ("compute", "memory", "launch", "collective", "host")


def frozen(mapping: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(mapping))
