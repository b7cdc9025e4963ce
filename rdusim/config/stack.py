"""Serving stacks: the software that drives a machine (stacks/*.yaml -> StackSpec).

A stack holds the host/runtime costs that are not hardware, each in the form of its
mechanism:

- constants (``host:``): what the serving software spends each time the node switches to
  another model, once per request (request set-up), once per generation step (its host
  loop) and per sequence per step (sampling bookkeeping, detokenising, stop checks);
- the runtime's generation loop between steps (``runtime:``, optional), computed by the
  simulator from the machine and the model (:mod:`rdusim.engine.host_runtime`): the
  step's outputs (token ids, or the logits when the host samples) crossing the host link
  to the host and the next step's inputs crossing back, the host thread waking to the
  step's end, sampling on the host;
- a *release* (``base: <stack>``) is another stack plus the ``added:`` terms it names,
  each a constant with its mechanism (e.g. the host generation loop of an older runtime),
  usually fitted to references (``fitted_to``).

It also holds the kernel-launch mode it uses by default (CUDA eager / CUDA graph on GPUs,
software / hardware orchestration on the RDU). Per-kernel launch costs stay in the arch
file: they are the host-to-device launch path of the machine.

Every number is ``{value, source}`` as in the arch files; a profile with no
published number says "assumed: ..." and is fitted to nothing.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Optional

from rdusim.config.arch import SCHEMAS
from rdusim.config.arch_common import ArchKind
from rdusim.config.machine import launch_names
from rdusim.config.policy import LaunchMode
from rdusim.config.strict import Ctx, build
from rdusim.config.yamlio import apply_overrides, load_yaml
from rdusim.errors import InputError
from rdusim.paths import DATA_ROOT, find_user_file

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

    def plus(self, other: "HostCosts") -> "HostCosts":
        return HostCosts(self.per_request_s + other.per_request_s, self.per_step_s + other.per_step_s,
                         self.per_sequence_step_s + other.per_sequence_step_s,
                         self.per_model_load_s + other.per_model_load_s)


HOST_FORMS = tuple(f.name for f in dataclasses.fields(HostCosts))    # per_request_s, per_step_s, ...


@dataclass(frozen=True)
class AddedTerm(HostCosts):
    """A constant a release adds to its base stack, with the mechanism it stands for."""

    mechanism: str = ""

    def __post_init__(self) -> None:
        if not self.mechanism.strip():
            raise ValueError("mechanism", "what the term is (a named mechanism of the runtime)", self.mechanism)

    @property
    def costs(self) -> HostCosts:
        return HostCosts(*(getattr(self, k) for k in HOST_FORMS))


class Sampling(enum.Enum):
    DEVICE = "device"   # the head kernel picks the next token: only token ids cross to the host
    HOST = "host"       # the logits cross to the host, which samples


@dataclass(frozen=True)
class RuntimeSpec:
    """The runtime's generation loop between two steps, as mechanisms the simulator times
    from the machine's host link and the model (:mod:`rdusim.engine.host_runtime`)."""

    sampling: Sampling = Sampling.DEVICE
    token_bytes: int = field(default=4, metadata={"gt": 0})                  # one token id on the host link
    host_wakeup_s: float = field(default=0.0, metadata={"ge": 0})           # host thread sees the step end
    host_sample_s_per_logit: float = field(default=0.0, metadata={"ge": 0})  # host sampling, per logit


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
    models_per_step: int = field(default=1, metadata={"gt": 0})    # distinct whole models (CoE experts) one step may run
    adapters_per_step: int = field(default=1, metadata={"gt": 0})  # distinct LoRA adapters one step may run
    prefix_caching: bool = False            # KV blocks of shared prompt prefixes kept and reused (LRU)


@dataclass(frozen=True)
class StackSpec:
    name: str
    kind: ArchKind                      # the kind of machine the stack drives
    description: str
    launch: LaunchMode                  # default kernel-launch mode (a platform may override it)
    host: HostCosts = HostCosts()           # the stack's own host constants (a release: its base's)
    runtime: Optional[RuntimeSpec] = None   # None: the host constants stand for the whole loop
    scheduler: SchedulerSpec = SchedulerSpec()
    base: Optional[str] = None          # a release: the stack whose terms it adds to
    added: Mapping[str, AddedTerm] = field(default_factory=lambda: MappingProxyType({}))
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), compare=False,
                                       metadata={"internal": True})
    fitted: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}), compare=False,
                                                  metadata={"internal": True})   # key -> reference ids

    @property
    def costs(self) -> HostCosts:
        """The host constants the runtime pays: its own plus every added term's."""
        total = self.host
        for term in self.added.values():
            total = total.plus(term.costs)
        return total

    def __post_init__(self) -> None:
        modes = SCHEMAS[self.kind].LAUNCH_MODES
        if self.launch not in modes:
            raise ValueError("launch", f"one of {launch_names(modes)} for a {self.kind.value} stack", self.launch.value)


def stack_path(name_or_path: str) -> Path:
    """A stack name in stacks/ (``nemo``) or a path to a YAML file: the one lookup rule of
    rdusim/paths.py (the path as given, else the shipped stacks/)."""
    p = Path(name_or_path)
    if p.suffix not in (".yaml", ".yml") and not p.is_absolute() and len(p.parts) == 1:
        return STACKS_DIR / f"{name_or_path}.yaml"      # a name: never a file of the current folder
    return find_user_file(name_or_path, "stacks", data_root=STACKS_DIR.parent)


def stack_names() -> list[str]:
    return sorted(p.stem for p in STACKS_DIR.glob("*.yaml"))


def stack_from_mapping(data: Any, file: str) -> StackSpec:
    ctx = Ctx(file=file, sourced=True)
    spec = build(StackSpec, data, ctx)
    return dataclasses.replace(spec, sources=MappingProxyType(dict(ctx.sources)),
                               fitted=MappingProxyType(dict(ctx.fitted)))


RELEASE_KEYS = ("name", "base", "description", "added")


def release_mapping(raw: Any, file: str, seen: tuple[str, ...] = ()) -> Any:
    """A stack file with ``base:`` (a release) merged over its base: the base's every key,
    the release's name and description, the base's added terms and then its own. A release
    adds terms and changes nothing else."""
    if not isinstance(raw, Mapping) or "base" not in raw:
        return raw
    extra = [k for k in raw if k not in RELEASE_KEYS]
    if extra:
        raise InputError(file, str(extra[0]), f"only {list(RELEASE_KEYS)} in a release (it adds terms to its "
                         "base stack and changes nothing else)", f"key {extra[0]!r}")
    name = raw["base"]
    path = stack_path(str(name))
    if not isinstance(name, str) or not path.is_file() or str(path) in seen:
        raise InputError(file, "base", f"a stack in stacks/ (one of {stack_names()}) other than this one",
                         name)
    base = release_mapping(load_yaml(path), str(path), seen + (file,))
    added = raw.get("added") or {}
    if not isinstance(added, Mapping):
        raise InputError(file, "added", "a mapping of term name -> {mechanism, per_*_s}", added)
    clash = [k for k in added if k in (base.get("added") or {})]
    if clash:
        raise InputError(file, f"added.{clash[0]}", f"a name not already added by base {name}", clash[0])
    merged = {k: v for k, v in base.items() if k not in ("name", "description", "added", "base")}
    merged.update(name=raw.get("name"), description=raw.get("description"), base=name,
                  added={**(base.get("added") or {}), **added})
    return merged


def load_stack(name_or_path: str, overrides: Iterable[tuple[str, Any]] = (), *, file: str = "workload",
               key: str = "stack") -> StackSpec:
    path = stack_path(name_or_path)
    if not path.is_file():
        raise InputError(file, key, f"a stack in stacks/ (one of {stack_names()}) or a path to a stack YAML file",
                         name_or_path)
    raw = release_mapping(load_yaml(path), str(path))
    raw = apply_overrides(raw, overrides, str(path), sourced=True)
    return stack_from_mapping(raw, str(path))
