"""The serving stack's host work around a step, term by term (stacks/*.yaml, rdusim.config.stack).

After a step's last kernel the runtime's generation loop runs on the host before the next
step can be launched. A stack with a ``runtime:`` section has it timed from its mechanism:

- ``round_trip``: the step's outputs cross the host link to the host (the device writes the
  sampled token ids, ``batch x outputs x token_bytes``, into host memory) and the next step's
  inputs cross back (``batch x inputs x token_bytes``: the new tokens, or a prompt in a
  prefill); each crossing one link latency plus its bytes at the link's bandwidth
  (``arch.links.pcie``: every socket/GPU has its own, so the tensor-parallel ranks are
  written at once);
- ``wakeup``: the host thread waiting for the step sees its end (``runtime.host_wakeup_s``);
- ``sampling``: with ``sampling: host`` the logits (``batch x outputs x vocab`` in the
  model's dtype: the head's all-gathered output) cross the link instead of token ids and the
  host samples them (``runtime.host_sample_s_per_logit`` each); with ``sampling: device`` the
  head kernel picks the token and the host pays nothing here;
- ``host_loop``: the stack's own constants, ``host.per_step_s + host.per_sequence_step_s x
  batch`` (its loop's bookkeeping, stop checks, streaming);
- then every term a release adds, under its own name.

``outputs`` is the number of positions whose token the step yields per sequence (1; k+1 when
verifying a speculative draft), ``inputs`` the tokens it was given per sequence (1 in decode,
the prompt in a prefill, k+1 in a verify). A stack without ``runtime:`` has only its
constants (``host_loop`` and added terms): they stand for its whole loop.
"""

from __future__ import annotations

from typing import Mapping

from rdusim.config.arch import ArchSpec
from rdusim.config.model import ModelConfig
from rdusim.config.stack import Sampling, StackSpec

#: the step terms a runtime section times, in order (then host_loop, then added terms)
RUNTIME_TERMS = ("round_trip", "wakeup", "sampling")


def step_host_parts(stack: StackSpec, arch: ArchSpec, model: ModelConfig, batch: int, inputs: int = 1,
                    outputs: int = 1) -> dict[str, float]:
    """The host work after one step of ``batch`` sequences, by term (seconds); the values sum
    to the step's host time (:func:`step_host_s`)."""
    parts: dict[str, float] = {}
    rt = stack.runtime
    if rt is not None:
        link = arch.links.pcie
        ids_in = link.transfer_time_s(batch * inputs * rt.token_bytes)
        if rt.sampling == Sampling.HOST:
            logits = batch * outputs * model.vocab_size
            to_host = logits * model.torch_dtype.nbytes
            parts["round_trip"] = link.latency_s + ids_in
            parts["wakeup"] = rt.host_wakeup_s
            parts["sampling"] = to_host / link.effective_bandwidth_bytes_per_s + logits * rt.host_sample_s_per_logit
        else:
            parts["round_trip"] = link.transfer_time_s(batch * outputs * rt.token_bytes) + ids_in
            parts["wakeup"] = rt.host_wakeup_s
            parts["sampling"] = 0.0
    own = stack.host
    parts["host_loop"] = own.per_step_s + own.per_sequence_step_s * batch
    for name, term in stack.added.items():
        if term.per_step_s or term.per_sequence_step_s:
            parts[name] = term.per_step_s + term.per_sequence_step_s * batch
    return parts


def step_host_s(stack: StackSpec, arch: ArchSpec, model: ModelConfig, batch: int, inputs: int = 1,
                outputs: int = 1) -> float:
    """The host work after one step: the stack's constants for ``batch`` sequences
    (``costs.step_s``, bit for bit when the stack has no runtime section) plus what its
    runtime section times."""
    t = stack.costs.step_s(batch)
    if stack.runtime is None:
        return t
    parts = step_host_parts(stack, arch, model, batch, inputs, outputs)
    return t + sum(parts[k] for k in RUNTIME_TERMS)


def request_host_parts(stack: StackSpec, program_load_s: float, cold: bool) -> Mapping[str, float]:
    """Once per request: the stack's set-up; when ``cold`` (another model ran before it on the
    node) also its model load: loading the model's programs (``program_load_s``, from the
    engine) and the stack's per-model-load constants (its own, then each added term's)."""
    parts = {"request_setup": stack.host.per_request_s}
    for name, term in stack.added.items():
        if term.per_request_s:
            parts[name] = term.per_request_s
    if cold:
        parts["program_load"] = program_load_s
        if stack.host.per_model_load_s:
            parts["model_load"] = stack.host.per_model_load_s
        for name, term in stack.added.items():
            if term.per_model_load_s:
                parts[name] = parts.get(name, 0.0) + term.per_model_load_s
    return parts
