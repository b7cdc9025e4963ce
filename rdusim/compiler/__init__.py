"""The RDU compiler: an OpGraph becomes a Plan of streaming kernels (pure Python, no SimPy)."""

from __future__ import annotations

from rdusim.compiler.compile import DEFAULT_TILES, compile_plan
from rdusim.compiler.plan import Collective, Kernel, Plan, Stage, StageKind, Stream, Tier

compile = compile_plan  # noqa: A001  the name the design uses: compile(graph, arch, policy) -> Plan

__all__ = ["compile", "compile_plan", "DEFAULT_TILES", "Plan", "Kernel", "Stage", "StageKind", "Stream",
           "Tier", "Collective"]
