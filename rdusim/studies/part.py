"""What one independent part of a study (a platform, a benchmark) adds to its run.

A study that computes its parts with :func:`rdusim.parallel.fork_map` has each part fill
a :class:`StudyPart` and merges them in the parts' order: the rows, records, notes and
trace events come out exactly as if the parts had run one after another in one process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable


@dataclass
class StudyPart:
    rows: list = field(default_factory=list)
    records: list = field(default_factory=list)
    notes: dict = field(default_factory=dict)
    oom_reasons: dict = field(default_factory=dict)
    events: list = field(default_factory=list)
    keyed: dict = field(default_factory=dict)     # the study's own values by key (CoE per-replication values...)

    @classmethod
    def merged(cls, parts: Iterable["StudyPart"]) -> "StudyPart":
        """The parts one after another: lists concatenated, mappings updated, in order."""
        out = cls()
        for p in parts:
            out.rows += p.rows
            out.records += p.records
            out.notes.update(p.notes)
            out.oom_reasons.update(p.oom_reasons)
            out.events += p.events
            out.keyed.update(p.keyed)
        return out
