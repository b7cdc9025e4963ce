"""The README's stack table: per stack release, each term of a decode step, its kind
(engine / bottom-up / assumed / fitted / sourced) and its share of the step, from the
decode-step split ``rdusim run`` prints (rdusim.studies.model_run.mechanism_lines)."""

from __future__ import annotations

from rdusim.docs.figure_base import CHAT, figure, ms as _ms
from rdusim.docs.runs import Runs

RELEASES = (CHAT + " --set platforms.sn40l.stack=sambanova_coe_2024 --set platforms.dgx_h100.stack=vllm"
            " --set platforms.dgx_a100.stack=tensorrt_llm")
TPU = "rdusim run workloads/tpu_v5e_llama3_70b.yaml"

# stack release -> (the run that uses it, its platform there)
STACKS = {"sambanova": (CHAT, "sn40l"), "sambanova_coe_2024": (RELEASES, "sn40l"), "nemo": (CHAT, "dgx_h100"),
          "vllm": (RELEASES, "dgx_h100"), "tensorrt_llm": (RELEASES, "dgx_a100"), "jetstream": (TPU, "v5e")}


def decode_terms(runs: Runs, stack: str) -> str:
    """``kernels a% + launch b% (engine); <term> <time>, c% (<kind>); ...`` of the stack's
    mean decode step."""
    command, platform = STACKS[stack]
    m, extra = runs.metrics(command), runs.extra(command)
    got = extra["policy"][platform]["stack"]
    if got != stack:
        raise KeyError(f"{command}: {platform} runs stack {got!r}, not {stack!r}")
    pre = f"model.{platform}.breakdown.step."
    kernels = sum(m[f"{pre}{k}_s"] for k in ("compute", "memory", "collective"))
    launch = m[f"{pre}launch_s"]
    host = {k[len(pre) + 5:-2]: v for k, v in m.items() if k.startswith(pre + "host.")}
    step = kernels + launch + sum(host.values())
    kinds = extra["host_terms"][platform]
    order = list(kinds)                      # the stack's order of its terms
    host = dict(sorted(host.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
    cells = [f"kernels {100 * kernels / step:.1f}% + launch {100 * launch / step:.1f}% (engine)"]
    for term, v in host.items():
        time = "0" if v == 0 else f"{_ms(v)}, {100 * v / step:.1f}%"
        cells.append(f"{term.replace('_', ' ')} {time} ({kinds.get(term, 'engine')})")
    return "; ".join(cells)


def _register(stack: str) -> None:
    figure(f"stacks.{stack}")(lambda runs: decode_terms(runs, stack))


for _stack in STACKS:
    _register(_stack)
