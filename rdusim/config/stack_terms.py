"""A stack's host costs as named terms: what each is, what it scales with, what kind of number.

The terms are those :mod:`rdusim.engine.host_runtime` times (a step's ``round_trip``,
``wakeup``, ``sampling``, ``host_loop`` and each added term; a request's ``request_setup``,
``program_load``, ``model_load`` and added terms). A term's *kind*:

- ``bottom-up``: computed by the simulator from the machine and the model (bytes over the
  host link, argument tables of the compiled program);
- ``assumed``: a declared assumption (its source says "assumed: why");
- ``fitted``: fitted to references (``fitted_to`` ids or a source saying "fitted");
- ``sourced``: a datasheet, paper or measured number.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from rdusim.config.stack import HOST_FORMS, StackSpec


class TermKind(enum.Enum):
    BOTTOM_UP = "bottom-up"
    ASSUMED = "assumed"
    FITTED = "fitted"
    SOURCED = "sourced"


_RANK = (TermKind.FITTED, TermKind.ASSUMED, TermKind.SOURCED, TermKind.BOTTOM_UP)   # a mix reads as the first


def key_kind(stack: StackSpec, key: str) -> TermKind:
    """The kind of one ``{value, source}`` number of the stack, by its dotted key."""
    source = stack.sources.get(key, "").strip().lower()
    if key in stack.fitted or source.startswith("fitted"):
        return TermKind.FITTED
    if source.startswith("assumed"):
        return TermKind.ASSUMED
    return TermKind.SOURCED


def _mixed(kinds) -> TermKind:
    kinds = set(kinds)
    return next((k for k in _RANK if k in kinds), TermKind.SOURCED)


_PER = {"per_request_s": "request", "per_step_s": "step", "per_sequence_step_s": "sequence-step",
        "per_model_load_s": "model switch"}


@dataclass(frozen=True)
class Term:
    name: str
    per: str            # what it is paid per: request, model switch, step, sequence-step
    kind: TermKind
    what: str           # the mechanism, or the keys it is computed from
    keys: tuple[str, ...] = ()   # the stack's numbers it reads


def stack_terms(stack: StackSpec) -> list[Term]:
    """Every term the stack's host costs are made of, in the order runs report them."""
    out = [Term("request_setup", "request", key_kind(stack, "host.per_request_s"),
                "the stack's request set-up", ("host.per_request_s",)),
           Term("program_load", "model switch", TermKind.BOTTOM_UP,
                "the engine's program load of the model's steps (SN40L: argument tables over links.pcie, "
                "arch launch.argument_bytes_per_stream per stream; GPU: none, kernels stay resident)")]
    if stack.host.per_model_load_s:
        out.append(Term("model_load", "model switch", key_kind(stack, "host.per_model_load_s"),
                        "the stack's per-model-load work", ("host.per_model_load_s",)))
    rt = stack.runtime
    if rt is not None:
        out.append(Term("round_trip", "step", TermKind.BOTTOM_UP,
                        "token ids to the host and the next inputs back over arch links.pcie (latency + bytes / "
                        "bandwidth each way; runtime.token_bytes per token)", ("runtime.token_bytes",)))
        out.append(Term("wakeup", "step", key_kind(stack, "runtime.host_wakeup_s"),
                        "the host thread waking to the step's end", ("runtime.host_wakeup_s",)))
        if rt.sampling.value == "host":
            what = ("logits (batch x outputs x vocab, model dtype) over links.pcie, then "
                    "runtime.host_sample_s_per_logit each on the host")
        else:
            what = "on the device, in the head kernel: nothing on the host"
        out.append(Term("sampling", "step", TermKind.BOTTOM_UP, what, ("runtime.sampling",
                                                                         "runtime.host_sample_s_per_logit")))
    keys = ("host.per_step_s", "host.per_sequence_step_s")
    out.append(Term("host_loop", "step", _mixed(key_kind(stack, k) for k in keys),
                    "the stack's per-step host work (+ per sequence)", keys))
    for name, term in stack.added.items():
        forms = [f for f in HOST_FORMS if f"added.{name}.{f}" in stack.sources]
        per = ", ".join(_PER[f] for f in forms)
        used = tuple(f"added.{name}.{f}" for f in forms)
        out.append(Term(name, per, _mixed(key_kind(stack, k) for k in used), term.mechanism, used))
    return out


def term_kinds(stack: StackSpec) -> dict[str, str]:
    """Term name -> kind (its value), for results and summaries."""
    return {t.name: t.kind.value for t in stack_terms(stack)}


def _value(stack: StackSpec, key: str):
    """The YAML value of a dotted key (the stack's own numbers, not the summed host)."""
    node = {"host": stack.host, "runtime": stack.runtime, "scheduler": stack.scheduler, "added": stack.added}
    head, *rest = key.split(".")
    obj = node[head]
    for part in rest:
        obj = obj[part] if isinstance(obj, dict) or hasattr(obj, "keys") else getattr(obj, part)
    return obj.value if isinstance(obj, enum.Enum) else obj


def show_lines(stack: StackSpec) -> list[str]:
    """``rdusim stack show``: the terms (kind, what each is paid per, value or mechanism), then
    every number of the stack with its source (and, if fitted, the references)."""
    lines = []
    if stack.base:
        lines.append(f"  release: stack {stack.base} plus the added terms below")
    lines.append(f"  {'launch':<34} {stack.launch.value:>12}   [default kernel-launch mode; a platform may override it]")
    lines.append("terms (what each is paid per; kind: bottom-up = computed from the machine and the model each run, "
                 "assumed, fitted, sourced):")
    for t in stack_terms(stack):
        vals = [f"{_value(stack, k):g} s" for k in t.keys if k.endswith("_s")]
        shown = " + ".join(vals) if t.kind != TermKind.BOTTOM_UP and vals else "computed"
        lines.append(f"  {t.name:<18} per {t.per:<14} {t.kind.value:<10} {shown:>20}   {t.what}")
    lines.append("numbers:")
    for key, source in stack.sources.items():
        fitted = f" fitted_to: {list(stack.fitted[key])}" if key in stack.fitted else ""
        v = _value(stack, key)
        shown = f"{v:.4g}" if isinstance(v, float) else str(v)
        lines.append(f"  {key:<34} {shown:>12}   [{source}]{fitted}")
    return lines
