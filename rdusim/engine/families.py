"""The registration of every machine family's engine: kind -> family (rdusim.engine.family).

The schema half is ``rdusim.config.arch.SCHEMAS``. Adding a family is its schema, its
engine package with one object implementing :class:`rdusim.engine.family.Family`, one line
in each table, and its tests (README, "Add a machine").
"""

from __future__ import annotations

from rdusim.config.arch_common import ArchKind
from rdusim.engine.family import Family
from rdusim.engine.gpu.family import FAMILY as GPU
from rdusim.engine.rdu.family import FAMILY as RDU
from rdusim.engine.tpu.family import FAMILY as TPU

FAMILIES: dict[ArchKind, Family] = {f.kind: f for f in (RDU, GPU, TPU)}


def family(arch) -> Family:
    """The engine of ``arch``'s family."""
    return FAMILIES[arch.kind]
