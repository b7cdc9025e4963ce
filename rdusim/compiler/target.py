"""The part of a machine the compiler reads: the key of a compiled plan.

:func:`~rdusim.compiler.compile.compile_plan` and
:func:`~rdusim.compiler.repeat.compile_repeated` turn the RduArch they are given into a
:class:`CompileTarget` first and compile against that, so the compiler cannot read a
field the target leaves out (it would fail), and a plan cached under
``content_key(CompileTarget.of(arch))`` is reused across machines that differ only in
what the compiler never reads: DDR, links, launch costs, the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from rdusim.config.arch_common import MemoryTier
from rdusim.config.arch_rdu import AgcuSpec, PcuSpec, PmuSpec, RduArch


@dataclass(frozen=True)
class TierCapacity:
    """The size of a memory tier, without its speed (what tensor placement reads)."""

    capacity_bytes: float
    reserved_bytes: float

    @property
    def usable_bytes(self) -> float:
        return self.capacity_bytes - self.reserved_bytes


@dataclass(frozen=True)
class TargetSocket:
    dies: int
    pcu: PcuSpec
    pmu: PmuSpec
    agcu: AgcuSpec
    hbm: MemoryTier          # capacity (tensor placement) and bandwidth (stage sizing)
    ddr: TierCapacity        # capacity only (does the spill fit); its bandwidth is not the compiler's


@dataclass(frozen=True)
class CompileTarget:
    socket: TargetSocket

    @classmethod
    def of(cls, arch: Union[RduArch, "CompileTarget"]) -> "CompileTarget":
        if isinstance(arch, CompileTarget):
            return arch
        s = arch.socket
        return cls(TargetSocket(dies=s.dies, pcu=s.pcu, pmu=s.pmu, agcu=s.agcu, hbm=s.hbm,
                                ddr=TierCapacity(s.ddr.capacity_bytes, s.ddr.reserved_bytes)))
