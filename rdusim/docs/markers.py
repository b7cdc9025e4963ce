"""Marked figures in markdown: find them, replace their text, compare within rounding.

Two forms, both invisible when the markdown is rendered:

- a block, whole lines between ``<!-- rdusim:begin NAME -->`` and ``<!-- rdusim:end NAME -->``
  (a command's output in a code fence, a generated table); markers indented by spaces (a
  block inside a list item) indent every line of the block alike;
- an inline figure, ``<!--rdusim:NAME-->42.9<!--/rdusim-->`` inside a sentence.

NAME is a figure of :mod:`rdusim.docs.figures`. Nothing outside the markers is touched.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping

BLOCK = re.compile(r"^(?P<indent>[ ]*)<!-- rdusim:begin (?P<name>[\w.-]+) -->\n(?P<body>.*?)"
                   r"^(?P=indent)<!-- rdusim:end (?P=name) -->$", re.S | re.M)
INLINE = re.compile(r"<!--rdusim:(?P<name>[\w.-]+)-->(?P<body>.*?)<!--/rdusim-->", re.S)
_OPEN_BLOCK = re.compile(r"^[ ]*<!-- rdusim:(begin|end) ([\w.-]+) -->$", re.M)
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


class MarkerError(ValueError):
    """A malformed or unknown marker (the message names the file and the marker)."""


@dataclass(frozen=True)
class Marked:
    name: str
    kind: str          # "block" or "inline"
    text: str          # what the document holds now (a block without its trailing newline)


def marked(text: str, where: str = "") -> list[Marked]:
    """Every marked figure of a document, in order; unbalanced block markers are an error."""
    out = [Marked(m["name"], "block", _dedent(m["body"].rstrip("\n"), m["indent"])) for m in BLOCK.finditer(text)]
    opened = [m.group(2) for m in _OPEN_BLOCK.finditer(text)]
    if len(opened) != 2 * len(out):
        raise MarkerError(f"{where}: a rdusim:begin/end marker without its partner (names: {sorted(set(opened))})")
    out += [Marked(m["name"], "inline", m["body"]) for m in INLINE.finditer(text)]
    return out


def replace(text: str, figures: Mapping[str, str], where: str = "") -> str:
    """The document with every marked figure's text set to ``figures[name]``."""
    missing = sorted({m.name for m in marked(text, where)} - set(figures))
    if missing:
        raise MarkerError(f"{where}: no figure named {', '.join(missing)} (rdusim/docs/figures.py)")

    def block(m: re.Match) -> str:
        pad = m["indent"]
        body = "\n".join(pad + line if line else line for line in figures[m["name"]].rstrip("\n").split("\n"))
        return f"{pad}<!-- rdusim:begin {m['name']} -->\n{body}\n{pad}<!-- rdusim:end {m['name']} -->"

    def inline(m: re.Match) -> str:
        if "\n" in figures[m["name"]]:
            raise MarkerError(f"{where}: figure {m['name']} has several lines: mark it as a block")
        return f"<!--rdusim:{m['name']}-->{figures[m['name']]}<!--/rdusim-->"

    return INLINE.sub(inline, BLOCK.sub(block, text))


def _dedent(body: str, pad: str) -> str:
    """A block's lines without the markers' indentation (a block inside a list item)."""
    return "\n".join(line[len(pad):] if line.startswith(pad) else line for line in body.split("\n"))


def same_within_rounding(a: str, b: str) -> bool:
    """The same text, each number equal within one unit of its last printed digit
    (so a figure that moved by float noise at its last digit still matches)."""
    parts_a, parts_b = NUMBER.split(a), NUMBER.split(b)
    nums_a, nums_b = NUMBER.findall(a), NUMBER.findall(b)
    if parts_a != parts_b or len(nums_a) != len(nums_b):
        return False
    return all(x == y or _close(x, y) for x, y in zip(nums_a, nums_b))


def _close(x: str, y: str) -> bool:
    try:
        fx, fy = float(x), float(y)
    except ValueError:
        return False
    return math.isclose(fx, fy, rel_tol=0, abs_tol=max(_unit(x), _unit(y)) * 1.000001)


def _unit(s: str) -> float:
    """One unit of the last digit written: 0.01 for ``2.41``, 1 for ``37``, 1e-6 for ``5.1e-05``'s mantissa."""
    mantissa, _, exp = s.lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 10.0 ** (-decimals + (int(exp) if exp else 0))
