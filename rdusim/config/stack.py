"""Serving stacks: the software that drives a machine (stacks/*.yaml -> StackSpec).

A stack holds the host/runtime costs that are not hardware: what the serving
software spends each time the node switches to another model (on the SN40L loading
that model's program and arguments), once per request (request set-up), once per
generation step (scheduler, Python loop, host
round trips) and per sequence per step (sampling, detokenising, stop checks), and
the kernel-launch mode it uses by default (CUDA eager / CUDA graph on GPUs,
software / hardware orchestration on the RDU). Per-kernel launch costs stay in the
arch file: they are the host-to-device launch path of the machine.

Every number is ``{value, source}`` as in the arch files; a profile with no
published number says "assumed: ..." and is fitted to nothing.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from rdusim.config.arch import SCHEMAS
from rdusim.config.arch_common import ArchKind
from rdusim.config.machine import launch_names
from rdusim.config.policy import LaunchMode
from rdusim.config.strict import Ctx, build
from rdusim.config.yamlio import apply_overrides, load_yaml
from rdusim.errors import InputError
from rdusim.paths import DATA_ROOT

STACKS_DIR = DATA_ROOT / "stacks"    # the shipped stacks (checkout or installed wheel: rdusim/paths.py)
DEFAULT_STACK = {kind: schema.DEFAULT_STACK for kind, schema in SCHEMAS.items()}   # each family's default


@dataclass(frozen=True)
class HostCosts:
    """Host/runtime time outside kernels, by what it scales with."""

    per_request_s: float = field(default=0.0, metadata={"ge": 0})            # once per request (batch)
    per_step_s: float = field(default=0.0, metadata={"ge": 0})               # once per generation step
    per_sequence_step_s: float = field(default=0.0, metadata={"ge": 0})      # per sequence per step
    # once each time the node switches to running another model (loading that model's
    # program and arguments): a cold request pays it, a request of the model already
    # running does not
    per_model_load_s: float = field(default=0.0, metadata={"ge": 0})

    def step_s(self, sequences: int) -> float:
        """Host time of one generation step over ``sequences`` sequences."""
        return self.per_step_s + self.per_sequence_step_s * sequences


class PreemptionMode(enum.Enum):
    RECOMPUTE = "recompute"   # drop the sequence's KV blocks; prefill prompt + generated tokens again later
    SWAP = "swap"             # copy its KV blocks to host DRAM (GPU) / DDR (RDU) and back


@dataclass(frozen=True)
class SchedulerSpec:
    """How the stack batches requests under load (continuous batching, vLLM style)."""

    max_sequences: int = field(default=256, metadata={"gt": 0})          # running sequences per step
    max_batched_tokens: int = field(default=2048, metadata={"gt": 0})    # tokens computed per step
    kv_block_tokens: int = field(default=16, metadata={"gt": 0})         # tokens per KV-cache block
    chunked_prefill: bool = False           # split prompts to fill the step's token budget beside decodes
    preemption: PreemptionMode = PreemptionMode.RECOMPUTE
    memory_reserve_fraction: float = field(default=0.1, metadata={"ge": 0, "le": 0.9})  # share of usable HBM left unallocated
    static_batch_sequences: int = field(default=8, metadata={"gt": 0})   # batch size of static batching


@dataclass(frozen=True)
class StackSpec:
    name: str
    kind: ArchKind                      # the kind of machine the stack drives
    description: str
    launch: LaunchMode                  # default kernel-launch mode (a platform may override it)
    host: HostCosts = HostCosts()
    scheduler: SchedulerSpec = SchedulerSpec()
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), compare=False,
                                       metadata={"internal": True})

    def __post_init__(self) -> None:
        modes = SCHEMAS[self.kind].LAUNCH_MODES
        if self.launch not in modes:
            raise ValueError("launch", f"one of {launch_names(modes)} for a {self.kind.value} stack", self.launch.value)


def stack_path(name_or_path: str) -> Path:
    """A stack name in stacks/ (``nemo``) or a path to a YAML file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.is_absolute() or len(p.parts) > 1:
        return p
    return STACKS_DIR / f"{name_or_path}.yaml"


def stack_names() -> list[str]:
    return sorted(p.stem for p in STACKS_DIR.glob("*.yaml"))


def stack_from_mapping(data: Any, file: str) -> StackSpec:
    ctx = Ctx(file=file, sourced=True)
    spec = build(StackSpec, data, ctx)
    return dataclasses.replace(spec, sources=MappingProxyType(dict(ctx.sources)))


def load_stack(name_or_path: str, overrides: Iterable[tuple[str, Any]] = (), *, file: str = "workload",
               key: str = "stack") -> StackSpec:
    path = stack_path(name_or_path)
    if not path.is_file():
        raise InputError(file, key, f"a stack in stacks/ (one of {stack_names()}) or a path to a stack YAML file",
                         name_or_path)
    raw = apply_overrides(load_yaml(path), overrides, str(path), sourced=True)
    return stack_from_mapping(raw, str(path))
