"""Speculative decoding in a workload: the draft model, lookahead k and the acceptance model.

Each speculative step the draft model decodes ``lookahead`` (k) tokens one by one, then the
target model computes k+1 tokens over its cached context in one step (the last accepted
token and the k drafted ones) and keeps the accepted prefix plus one token of its own.

Acceptance model, one of:
- ``acceptance``: a per-token probability p that a drafted token is accepted (independent
  tokens): expected tokens per step E = (1 - p^(k+1)) / (1 - p) (k+1 when p = 1);
- ``accepted_lengths``: a measured distribution, P(0 accepted), ..., P(k accepted)
  (k+1 probabilities summing to 1): E = sum_i P(i) (i + 1).

``placement``: ``shared`` (the draft runs on the target's sockets/GPUs, its weights and KV
beside the target's) or ``separate`` (on other sockets/GPUs of the node: target tp +
draft tp must fit in the node). ``fused_draft_loop``: the k draft passes run as one
device-side program (a captured CUDA graph / one RDU schedule): they pay one host round
trip and the per-program launch once instead of once per pass (rdusim.engine.speculative);
a stack that samples on the host cannot run one.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Optional

from rdusim.config.formats import Formats
from rdusim.config.limits import MAX_TOKENS, upto
from rdusim.config.strict import positive


class DraftPlacement(enum.Enum):
    SHARED = "shared"       # on the target's devices
    SEPARATE = "separate"   # on devices of its own


@dataclass(frozen=True)
class SpeculativeSpec:
    draft: str                                                    # model name in models/ or a YAML path
    lookahead: int = field(default=4, metadata=upto(MAX_TOKENS))  # k drafted tokens per step
    acceptance: Optional[float] = field(default=None, metadata={"ge": 0, "le": 1})
    accepted_lengths: tuple[float, ...] = ()                      # P(0..k drafted tokens accepted)
    placement: DraftPlacement = DraftPlacement.SHARED
    draft_tp: Optional[int] = field(default=None, metadata=positive())   # null: the platform's tp
    draft_formats: Formats = Formats()
    fused_draft_loop: bool = False

    def __post_init__(self) -> None:
        if (self.acceptance is None) == (not self.accepted_lengths):
            raise ValueError("acceptance", "exactly one of acceptance (a per-token probability) and "
                             "accepted_lengths (a distribution)", self.acceptance)
        if self.accepted_lengths:
            ps = self.accepted_lengths
            if len(ps) != self.lookahead + 1:
                raise ValueError("accepted_lengths", f"{self.lookahead + 1} probabilities (0..lookahead accepted)",
                                 list(ps))
            if any(p < 0 for p in ps) or not math.isclose(sum(ps), 1.0, abs_tol=1e-6):
                raise ValueError("accepted_lengths", "non-negative probabilities summing to 1", list(ps))

    @property
    def tokens_per_step(self) -> float:
        """Expected tokens each target step yields (accepted drafts + the target's own)."""
        return expected_tokens(self.lookahead, self.acceptance, self.accepted_lengths)


def expected_tokens(k: int, p: Optional[float] = None, lengths: tuple[float, ...] = ()) -> float:
    if lengths:
        return float(sum(q * (i + 1) for i, q in enumerate(lengths)))
    if p is None:
        raise ValueError("an acceptance probability or a distribution of accepted lengths is needed")
    if p >= 1.0:
        return float(k + 1)
    return (1.0 - p ** (k + 1)) / (1.0 - p)
