"""Workload files: common loading, platforms, ``--set`` routing, dispatch by kind.

Each kind's fields live in its own module (workload_model, workload_fusion, workload_coe).
Overrides whose key starts with ``arch.<platform>.`` go to that platform's arch file;
all others go to the workload itself.
"""

from __future__ import annotations

import enum
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Optional

from rdusim.config.arch import ArchSpec, load_arch
from rdusim.config.arch_common import ArchKind
from rdusim.config.checks import check_workload   # consistency checks needing models and machines
from rdusim.config.deployment import Deployment
from rdusim.config import limits as L
from rdusim.config.execution import ExecutionConfig
from rdusim.config.machine import launch_names
from rdusim.config.model import ModelConfig
from rdusim.config.policy import FusionPolicy, LaunchMode
from rdusim.config.stack import DEFAULT_STACK, StackSpec, load_stack
from rdusim.config.strict import Ctx, build
from rdusim.config.yamlio import apply_overrides, load_yaml
from rdusim.errors import InputError
from rdusim.paths import DATA_ROOT, candidates, find_user_file, folder_name_problem, resolve
from rdusim.rows import platform_name_problem

# the shipped data (arch/, models/, workloads/, references/, stacks/): the checkout, or the
# copies inside an installed wheel (rdusim/paths.py)
REPO_ROOT = DATA_ROOT


class WorkloadKind(enum.Enum):
    MODEL = "model"
    FUSION = "fusion"
    COE = "coe"
    SERVE = "serve"
    FINETUNE = "finetune"


# kind -> "module:Class" of its frozen dataclass
_SPEC_CLASSES = {
    WorkloadKind.MODEL: "rdusim.config.workload_model:ModelWorkload",
    WorkloadKind.FUSION: "rdusim.config.workload_fusion:FusionWorkload",
    WorkloadKind.COE: "rdusim.config.workload_coe:CoeWorkload",
    WorkloadKind.SERVE: "rdusim.config.workload_serve:ServeWorkload",
    WorkloadKind.FINETUNE: "rdusim.config.workload_finetune:FinetuneWorkload",
}


@dataclass(frozen=True)
class PlatformSpec:
    """One machine a workload runs on: an arch file plus the policy to run it with."""

    arch: str
    tp: int = field(default=8, metadata={"gt": 0, "le": L.MAX_TP})
    fusion: FusionPolicy = FusionPolicy.FUSED
    launch: Optional[LaunchMode] = None   # None: the stack's launch mode
    stack: Optional[str] = None           # serving stack (stacks/<name>.yaml or a path); None: the kind's default

    def stack_name(self, kind: ArchKind) -> str:
        return self.stack if self.stack is not None else DEFAULT_STACK[kind]


@dataclass(frozen=True)
class LoadedWorkload:
    file: str
    kind: WorkloadKind
    spec: Any                              # the kind's frozen dataclass
    raw: Mapping[str, Any]                 # the workload as run, after overrides
    archs: Mapping[str, ArchSpec]          # platform name -> machine
    seed: int
    stacks: Mapping[str, StackSpec] = field(default_factory=lambda: MappingProxyType({}))  # platform -> stack
    arch_files: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # platform -> file used

    @property
    def name(self) -> str:
        return self.spec.name

    def launch(self, platform: str) -> LaunchMode:
        """The platform's launch mode: its own ``launch``, else its stack's."""
        plat: PlatformSpec = self.spec.platforms[platform]
        return plat.launch if plat.launch is not None else self.stacks[platform].launch

    @property
    def execution(self) -> ExecutionConfig:
        return getattr(self.spec, "execution", ExecutionConfig())

    def deployment(self, platform: str, model: ModelConfig) -> Deployment:
        """``model`` served on ``platform`` with its machine, stack and policy."""
        plat: PlatformSpec = self.spec.platforms[platform]
        return Deployment(self.archs[platform], self.stacks[platform], model, plat.tp, plat.fusion,
                          self.launch(platform), self.execution)


def resolve_path(path: str, relative_to: str | Path | None = None) -> Path:
    """A relative path in a workload file: beside that file first, then in the shipped data."""
    return resolve(path, relative_to, REPO_ROOT)


def workload_file(path: str | Path) -> Path:
    """A workload named on the command line: a path, or a shipped workload (``coe150``)."""
    return find_user_file(str(path), "workloads", data_root=REPO_ROOT)


def split_overrides(overrides: Iterable[tuple[str, Any]]) -> tuple[list, dict[str, list], dict[str, list]]:
    """Workload overrides, ``arch.<platform>.*`` ones and ``stack.<platform>.*`` ones."""
    wl, arch, stack = [], {}, {}
    for key, value in overrides:
        parts = key.split(".")
        if parts[0] in ("arch", "stack"):
            if len(parts) < 3:
                raise InputError("--set", key, f"{parts[0]}.<platform>.<dotted key in the {parts[0]} file>", key)
            (arch if parts[0] == "arch" else stack).setdefault(parts[1], []).append((".".join(parts[2:]), value))
        else:
            wl.append((key, value))
    return wl, arch, stack


def spec_class(kind: WorkloadKind) -> type:
    module, cls = _SPEC_CLASSES[kind].split(":")
    return getattr(importlib.import_module(module), cls)


def load_workload(path: str | Path, overrides: Iterable[tuple[str, Any]] = (),
                  seed: int | None = None) -> LoadedWorkload:
    path = workload_file(path)
    file = str(path)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= L.MAX_SEED):
        raise InputError("--seed", "seed", f"an integer in 0..{L.MAX_SEED}", seed)
    wl_over, arch_over, stack_over = split_overrides(overrides)
    data = load_yaml(path)
    if isinstance(data, dict) and "sweep" in data and "kind" not in data:
        raise InputError(file, "sweep", "a workload file (with kind: model, fusion, coe or serve)",
                         "this is a sweep file; use rdusim sweep")
    raw = apply_overrides(data, wl_over, file)
    if not isinstance(raw, dict):
        raise InputError(file, "(top level)", "a mapping", raw)
    kinds = [k.value for k in WorkloadKind]
    if raw.get("kind") not in kinds:
        raise InputError(file, "kind", f"one of {kinds}", raw.get("kind"))
    kind = WorkloadKind(raw["kind"])
    spec = build(spec_class(kind), raw, Ctx(file=file))
    if (problem := folder_name_problem(spec.name)) is not None:
        raise InputError(file, "name", problem, repr(spec.name))
    platforms: Mapping[str, PlatformSpec] = spec.platforms
    if not platforms:
        raise InputError(file, "platforms", "at least one platform (a name mapped to {arch: ..., tp: ...})", {})
    for prefix, over in (("arch", arch_over), ("stack", stack_over)):
        unknown = sorted(set(over) - set(platforms))
        if unknown:
            raise InputError("--set", f"{prefix}.{unknown[0]}",
                             f"a platform of this workload (one of {sorted(platforms)})", unknown[0])
    archs, stacks, arch_files = {}, {}, {}
    for name, plat in platforms.items():
        if (problem := platform_name_problem(name, kind.value)) is not None:
            raise InputError(file, f"platforms.{name}", problem, name)
        arch_file = resolve_path(plat.arch, file)
        if not arch_file.is_file():
            tried = " or ".join(str(c) for c in candidates_of(plat.arch, file))
            raise InputError(file, f"platforms.{name}.arch", f"a path to an arch YAML file (tried {tried})",
                             plat.arch)
        archs[name] = load_arch(arch_file, arch_over.get(name, ()))
        arch_files[name] = str(arch_file)
        check_tp(archs[name], plat.tp, file, f"platforms.{name}.tp")
        stacks[name] = platform_stack(archs[name], plat, stack_over.get(name, ()), file, name)
    run_seed = seed if seed is not None else getattr(spec, "seed", 0)
    loaded = LoadedWorkload(file, kind, spec, MappingProxyType(raw), MappingProxyType(archs), run_seed,
                            MappingProxyType(stacks), MappingProxyType(arch_files))
    check_workload(loaded)
    return loaded


def candidates_of(path: str, relative_to: str | Path) -> list[Path]:
    return candidates(path, relative_to, REPO_ROOT)


def platform_stack(arch: ArchSpec, plat: PlatformSpec, overrides, file: str, name: str) -> StackSpec:
    """The platform's serving stack, checked against its machine and launch mode."""
    key = f"platforms.{name}.stack"
    ref = plat.stack_name(arch.kind)
    if ref.endswith((".yaml", ".yml")):
        ref = str(resolve_path(ref, file))
    stack = load_stack(ref, overrides, file=file, key=key)
    if stack.kind != arch.kind:
        raise InputError(file, key, f"a stack for a {arch.kind.value} machine ({arch.name})",
                         f"{stack.name} (a {stack.kind.value} stack)")
    if plat.launch is not None and plat.launch not in arch.LAUNCH_MODES:
        raise InputError(file, f"platforms.{name}.launch",
                         f"one of {launch_names(arch.LAUNCH_MODES)} for {arch.kind.value} platform {name}",
                         plat.launch.value)
    return stack


def check_tp(arch: ArchSpec, tp: int, file: str, key: str) -> None:
    devices = arch.devices_per_node
    if tp > devices:
        raise InputError(file, key, f"at most the {devices} {arch.DEVICE}s of {arch.name} (tensor parallel "
                         f"across nodes: a cluster platform, clusters.<name> with a clusters/*.yaml)", tp)
