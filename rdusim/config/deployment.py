"""A deployment: one model served on one machine by one stack, with its policy.

The three inputs stay apart (machine, work, policy); this only names the
combination an engine is asked to time. Frozen and hashable, so cached results
can be keyed by it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from rdusim.config.arch import ArchSpec
from rdusim.config.execution import ExecutionConfig
from rdusim.config.machine import idealised
from rdusim.config.model import ModelConfig
from rdusim.config.policy import FusionPolicy, LaunchMode
from rdusim.config.stack import DEFAULT_STACK, StackSpec, load_stack


@dataclass(frozen=True)
class Deployment:
    arch: ArchSpec
    stack: StackSpec
    model: ModelConfig
    tp: int
    fusion: FusionPolicy
    launch: LaunchMode
    execution: ExecutionConfig = ExecutionConfig()

    def __post_init__(self) -> None:
        # roofline mode: the machine and the stack as ideal (the one switch, execution.ideal)
        if self.execution.ideal:
            object.__setattr__(self, "arch", idealised(self.arch))
            object.__setattr__(self, "stack", idealised(self.stack))

    def ideal(self) -> "Deployment":
        """The same deployment in roofline mode (rdusim.engine.roofline)."""
        return dataclasses.replace(self, execution=dataclasses.replace(self.execution, ideal=True))

    @classmethod
    def of(cls, arch: ArchSpec, model: ModelConfig, tp: int, fusion: FusionPolicy = FusionPolicy.FUSED,
           launch: LaunchMode | None = None, stack: StackSpec | str | None = None,
           execution: ExecutionConfig | None = None) -> "Deployment":
        """A deployment with defaults filled in: the machine kind's default stack and that
        stack's launch mode (for scripts and tests; workloads use LoadedWorkload.deployment)."""
        if not isinstance(stack, StackSpec):
            stack = load_stack(stack or DEFAULT_STACK[arch.kind])
        return cls(arch, stack, model, tp, fusion, launch or stack.launch, execution or ExecutionConfig())

    @property
    def name(self) -> str:
        return f"{self.model.name} on {self.arch.name} (tp{self.tp}, {self.fusion.value}, {self.launch.value}, " \
               f"{self.stack.name})"
