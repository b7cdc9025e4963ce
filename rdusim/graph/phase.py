"""Execution phases of a language model."""

from __future__ import annotations

import enum


class Phase(enum.Enum):
    PREFILL = "prefill"   # batch x seq prompt tokens, writes the KV cache
    DECODE = "decode"     # one new token per sequence against a KV cache of `seq` tokens
    TRAIN = "train"       # forward + backward + optimizer step over batch x seq tokens
