"""Per-request records in a columnar side file of the run folder: ``requests.csv``.

A serving run records one row per measured request (``row: request``); 100,000 requests
would make results.json ~100 MB. When a run is written, those rows go to ``requests.csv``
beside results.json, one column per field (:data:`COLUMNS`), and each group of them (a
platform and batching mode) leaves in results.json's records one pointer row in its place:
``{"row": "requests", "platform", "batching", "file": "requests.csv", "first": i, "count": n}``
(CSV rows i .. i + n - 1, header not counted). Loading results.json (rdusim.results.load_result)
puts the rows back where the pointers stand, so a report renders what it rendered from them.
Cells: an empty cell is a missing value (a request not completed has no latencies),
``true``/``false`` for ``completed``, floats written in full (``repr``: read back to the bit).
Load it with ``pandas.read_csv(path)`` or ``numpy.genfromtxt(path, delimiter=",", names=True,
dtype=None, encoding="utf-8")``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Mapping, Sequence

from rdusim.errors import InputError

REQUESTS_CSV = "requests.csv"
ROW, POINTER = "request", "requests"
# the columns, in a request record's key order, with their types (a record of other keys stays inline)
COLUMNS: tuple[tuple[str, type], ...] = (
    ("platform", str), ("batching", str), ("id", int), ("arrival_s", float), ("prompt_tokens", int),
    ("output_tokens", int), ("expert", int), ("queue_s", float), ("ttft_s", float), ("tpot_s", float),
    ("e2e_s", float), ("preemptions", int), ("switches", int), ("completed", bool))
_KEYS = ("row",) + tuple(c for c, _ in COLUMNS)


def _columnar(r: Any) -> bool:
    """A request record whose keys and value types are the file's."""
    if type(r) is not dict or r.get("row") != ROW or tuple(r) != _KEYS:
        return False
    for c, t in COLUMNS:
        v = r[c]
        if v is not None and type(v) is not t:
            return False
    return True


def split(records: Sequence[Any]) -> tuple[list[Any], list[dict]]:
    """The records with each run of request records replaced by a pointer row, and the
    request records (in order)."""
    kept: list[Any] = []
    rows: list[dict] = []
    for r in records:
        if not _columnar(r):
            kept.append(r)
            continue
        last = kept[-1] if kept else None
        if (type(last) is dict and last.get("row") == POINTER and last["platform"] == r["platform"]
                and last["batching"] == r["batching"] and last["first"] + last["count"] == len(rows)):
            last["count"] += 1
        else:
            kept.append({"row": POINTER, "platform": r["platform"], "batching": r["batching"],
                         "file": REQUESTS_CSV, "first": len(rows), "count": 1})
        rows.append(r)
    return kept, rows


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if v is True or v is False:
        return "true" if v else "false"
    return repr(v) if type(v) is float else str(v)


def csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as CSV text: a header of :data:`COLUMNS`, one line per request."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    names = [c for c, _ in COLUMNS]
    w.writerow(names)
    w.writerows([[_cell(r[c]) for c in names] for r in rows])
    return buf.getvalue()


def _parse(text: str, t: type) -> Any:
    if text == "":
        return None
    if t is bool:
        return text == "true"
    return t(text)


def read_rows(path: Path) -> list[dict]:
    """The request records of a ``requests.csv`` (as the run recorded them)."""
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        names = [c for c, _ in COLUMNS]
        if header != names:
            raise InputError(str(path), "", f"a requests file with the columns {','.join(names)}",
                             ",".join(header or []) or "no header")
        types = [t for _, t in COLUMNS]
        return [dict(zip(_KEYS, [ROW] + [_parse(v, t) for v, t in zip(line, types)])) for line in reader]


def expand(records: Sequence[Any], folder: Path) -> list[Any]:
    """``records`` with every pointer row replaced by its rows of ``folder``'s requests
    file; unchanged (pointers kept) when that file is not there."""
    if not any(type(r) is dict and r.get("row") == POINTER for r in records):
        return list(records)
    path = folder / REQUESTS_CSV
    if not path.is_file():
        return list(records)
    rows = read_rows(path)
    out: list[Any] = []
    for r in records:
        if type(r) is dict and r.get("row") == POINTER and r.get("file") == REQUESTS_CSV:
            out += rows[int(r["first"]):int(r["first"]) + int(r["count"])]
        else:
            out.append(r)
    return out
