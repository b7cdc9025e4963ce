"""Fit groups: which parameters were fitted to which calibration references.

Every fitted number of ``arch/*.yaml`` and ``stacks/*.yaml`` names the references it
was fitted to (``fitted_to``, :mod:`rdusim.config.fitted`). Parameters whose reference
lists overlap were fitted together: they form one *fit group* with the union of their
references as its points. A group of P parameters on N points leaves N - P degrees of
freedom; with 0 the fit reproduces its points by construction, so passing them says
nothing about the model. A number copied unchanged into a variant of its machine (same
key, value and references) is one parameter, not two.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from rdusim.config.fitted import FittedParameter, fitted_parameters


@dataclass(frozen=True)
class FitGroup:
    label: str                                   # "F1", "F2", ... in the order of the table
    parameters: tuple[tuple[FittedParameter, ...], ...]   # per parameter: the number and its copies
    references: tuple[str, ...]                  # the reference ids fitted to, in order of first mention

    @property
    def points(self) -> int:
        return len(self.references)

    @property
    def dof(self) -> int:
        return self.points - len(self.parameters)

    def parameter_labels(self) -> list[str]:
        """``file key`` per parameter, copies named after it."""
        out = []
        for copies in self.parameters:
            first = copies[0]
            text = first.label
            if len(copies) > 1:
                text += " (same fit in " + ", ".join(c.file for c in copies[1:]) + ")"
            out.append(text)
        return out


def fit_groups(params: Iterable[FittedParameter], order: Sequence[str] = ()) -> list[FitGroup]:
    """Group fitted parameters that share references; labels follow ``order`` (reference
    ids as the table lists them), groups with none of those references last."""
    distinct: dict[tuple, list[FittedParameter]] = {}
    for p in params:
        distinct.setdefault(p.identity, []).append(p)
    items = list(distinct.values())
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, copies in enumerate(items):
        for ref in copies[0].fitted_to:
            if ref in owner:
                parent[find(i)] = find(owner[ref])
            else:
                owner[ref] = i
    members: dict[int, list[int]] = {}
    for i in range(len(items)):
        members.setdefault(find(i), []).append(i)
    rank = {ref: n for n, ref in enumerate(order)}

    def first_ref(idx: list[int]) -> tuple:
        refs = [r for i in idx for r in items[i][0].fitted_to]
        known = [rank[r] for r in refs if r in rank]
        return (min(known) if known else len(rank), idx[0])

    groups = []
    for n, idx in enumerate(sorted(members.values(), key=first_ref), start=1):
        refs: dict[str, None] = {}
        for i in idx:
            refs.update(dict.fromkeys(items[i][0].fitted_to))
        groups.append(FitGroup(f"F{n}", tuple(tuple(items[i]) for i in idx), tuple(refs)))
    return groups


def shipped_fit_groups(root: Path, order: Sequence[str] = ()) -> list[FitGroup]:
    """The fit groups of the spec files under ``root`` (arch/ and stacks/)."""
    return fit_groups(fitted_parameters(root), order)


def compact_ids(ids: Sequence[str], width: int = 100) -> list[str]:
    """Reference ids as wrapped lines, runs sharing a dotted prefix written once:
    ``nemo.llama2-7b.h100.{tp1.bs1, tp1.bs2}``."""
    parts: list[str] = []
    i = 0
    while i < len(ids):
        head = ids[i].split(".")[:2]
        j = i
        while j < len(ids) and ids[j].split(".")[:2] == head:
            j += 1
        run = ids[i:j]
        if len(run) == 1:
            parts.append(run[0])
        else:
            split = [r.split(".") for r in run]
            k = 0
            while all(len(s) > k + 1 and s[k] == split[0][k] for s in split):
                k += 1
            prefix = ".".join(split[0][:k])
            parts.append(f"{prefix}.{{" + ", ".join(".".join(s[k:]) for s in split) + "}")
        i = j
    lines, cur = [], ""
    for word in ", ".join(parts).split(" "):
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    if cur:
        lines.append(cur)
    return lines
