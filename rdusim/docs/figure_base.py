"""The figure registry: every figure of the README and docs/ registers here under the name
its markers use (:mod:`rdusim.docs.figures` imports every module of figures, so the
registry is complete once it is imported), with the commands the figures share."""

from __future__ import annotations

from typing import Callable

from rdusim.docs.runs import Runs

COE = "rdusim run workloads/coe150.yaml"
CHAT = "rdusim run workloads/llama2_7b_chat.yaml"
VALIDATE = "rdusim validate"

PLATFORMS = ("sn40l", "dgx_h100", "dgx_a100")

FIGURES: dict[str, Callable[[Runs], str]] = {}


def figure(name: str):
    def register(fn: Callable[[Runs], str]) -> Callable[[Runs], str]:
        FIGURES[name] = fn
        return fn
    return register


def fence(text: str) -> str:
    return f"```\n{text}\n```"


def ms(seconds: float) -> str:
    """A time in ms (us below a millisecond), three significant digits."""
    return f"{seconds * 1e3:.3g} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.3g} us"
