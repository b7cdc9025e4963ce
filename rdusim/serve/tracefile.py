"""Request trace files: the Azure LLM inference CSV (``TIMESTAMP,ContextTokens,GeneratedTokens``)
or a plain CSV (``arrival_s,prompt_tokens,output_tokens[,expert][,prefix_id,prefix_tokens]``), read
and checked. ``prefix_id`` names a shared prompt prefix (a system prompt, a conversation's
earlier turns; -1: none) of ``prefix_tokens`` tokens at the start of the prompt, for prefix
caching. (The Azure 2023 traces carry no conversation structure: no prefix there.)

Every problem is an InputError naming the file, the row (its line in the file) and the
field: a file that is not UTF-8 text (a UTF-8 byte-order mark is fine), a malformed CSV
row, a time that is not a finite number (or, for Azure, not a valid clock time), times out
of order or spanning more than the simulated clock resolves, token counts that are not
integers in 1..MAX_TOKENS, expert ids out of range, more rows than a run may simulate.
Blank lines (a trailing newline, an empty last line) are skipped.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rdusim.config import limits as L
from rdusim.config.files import MAX_TRACE_BYTES, check_input_file
from rdusim.config.workload_serve import TraceFormat
from rdusim.errors import InputError

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
PLAIN_COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens")
PLAIN_OPTIONAL = (("expert",), ("prefix_id", "prefix_tokens"), ("expert", "prefix_id", "prefix_tokens"))
MAX_FIELD_CHARS = 1024        # no field of a trace row is longer (the csv module's own limit is 131072)
_CLOCK = re.compile(r"(\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?)")
_INT = re.compile(r"[+]?\d+")


@dataclass(frozen=True)
class Trace:
    """A trace file as read: times from its first request, lengths, optional experts."""

    file: str
    times_s: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    expert: np.ndarray        # -1 where the file has no expert column
    prefix: np.ndarray | None = None          # shared prefix id per request (-1: none); None: no column
    prefix_tokens: np.ndarray | None = None   # its length in tokens

    @property
    def span_s(self) -> float:
        """Recorded time from the first arrival to the last (0: one row, or all at one instant)."""
        return float(self.times_s[-1] - self.times_s[0])

    @property
    def mean_rate_per_s(self) -> float | None:
        """Recorded arrivals per second; None when the trace spans no time (no rate to scale)."""
        span = self.span_s
        return (len(self.times_s) - 1) / span if span > 0 else None


def read_trace(path: str | Path, fmt: TraceFormat, experts: int = 0) -> Trace:
    """Read a trace CSV; every bad row is an InputError naming file, row and field.
    ``experts`` > 0: an expert column must name one of that many experts."""
    p = Path(path)
    file = str(p)
    check_input_file(p, "a trace CSV file", MAX_TRACE_BYTES)
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(file, f"row {line}", "a UTF-8 text CSV file", f"undecodable bytes at byte {exc.start} "
                         "(a binary or differently encoded file?)") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise InputError(file, f"row {line}", "a UTF-8 text CSV file", "a NUL byte (a binary file?)")
    rows = _rows(text, file)
    if not rows:
        raise InputError(file, "row 1", "a header row", "an empty file")
    line, header = rows[0]
    header = [h.strip() for h in header]
    want = AZURE_COLUMNS if fmt == TraceFormat.AZURE else PLAIN_COLUMNS
    if tuple(header[:3]) != want or (len(header) > 3 and (fmt == TraceFormat.AZURE
                                                          or tuple(header[3:]) not in PLAIN_OPTIONAL)):
        extra = "" if fmt == TraceFormat.AZURE else "[,expert][,prefix_id,prefix_tokens]"
        raise InputError(file, f"row {line}", f"the header {','.join(want)}{extra}", ",".join(header))
    body = rows[1:]
    if not body:
        raise InputError(file, f"row {line + 1}", "at least one request after the header", "no rows")
    if len(body) > L.MAX_REQUESTS:
        raise InputError(file, "", f"at most {L.MAX_REQUESTS:g} requests (the most a run simulates)",
                         f"{len(body)} rows")
    n = len(body)
    times, prompt, output = np.empty(n), np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    expert = np.full(n, -1, dtype=np.int64)
    has_prefix = "prefix_id" in header
    prefix = np.full(n, -1, dtype=np.int64) if has_prefix else None
    prefix_tokens = np.zeros(n, dtype=np.int64) if has_prefix else None
    col = {h: j for j, h in enumerate(header)}
    for i, (line, row) in enumerate(body):
        where = f"row {line}"
        if len(row) != len(header):
            raise InputError(file, where, f"{len(header)} fields ({','.join(header)})", ",".join(row))
        times[i] = _azure_time(row[0], file, where) if fmt == TraceFormat.AZURE else \
            _seconds(row[0], file, f"{where}.{header[0]}")
        prompt[i] = _count(row[1], file, f"{where}.{header[1]}", 1, L.MAX_TOKENS, "tokens")
        output[i] = _count(row[2], file, f"{where}.{header[2]}", 1, L.MAX_TOKENS, "tokens")
        if "expert" in col:
            top = experts - 1 if experts else L.MAX_EXPERTS - 1
            what = f"an expert id below the CoE's expert count ({experts})" if experts else "an expert id"
            expert[i] = _count(row[col["expert"]], file, f"{where}.expert", 0, top, what)
        if has_prefix:
            text = row[col["prefix_id"]].strip()
            prefix[i] = -1 if text == "-1" else _count(text, file, f"{where}.prefix_id", 0, 2**62,
                                                       "a prefix id, or -1 for none")
            prefix_tokens[i] = _count(row[col["prefix_tokens"]], file, f"{where}.prefix_tokens", 0, int(prompt[i]),
                                      "tokens of the prompt its prefix covers (at most prompt_tokens)")
        if i and times[i] < times[i - 1]:
            raise InputError(file, f"{where}.{header[0]}", f"a time >= the previous row's ({times[i - 1]})", row[0])
        if times[i] - times[0] > L.MAX_SIM_TIME_S:
            raise InputError(file, f"{where}.{header[0]}", f"a time within {L.MAX_SIM_TIME_S:g} s of the first "
                             "row's (the span a run simulates)", row[0])
    return Trace(file, times, prompt, output, expert, prefix, prefix_tokens)


def _rows(text: str, file: str) -> list[tuple[int, list[str]]]:
    """(line number, fields) of every non-blank row."""
    out = []
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return out
        except csv.Error as exc:
            raise InputError(file, f"row {reader.line_num}", f"a well-formed CSV row (fields of at most "
                             f"{MAX_FIELD_CHARS} characters)", str(exc)) from None
        if not row or len(row) == 1 and not row[0].strip():
            continue                 # a blank line
        long = next((f for f in row if len(f) > MAX_FIELD_CHARS), None)
        if long is not None:
            raise InputError(file, f"row {reader.line_num}", f"fields of at most {MAX_FIELD_CHARS} characters",
                             f"a field of {len(long)} characters")
        out.append((reader.line_num, row))


def _count(text: str, file: str, key: str, least: int, most: int, what: str) -> int:
    t = text.strip()
    if not _INT.fullmatch(t):
        raise InputError(file, key, f"an integer ({what})", text)
    v = int(t) if len(t) <= 20 else most + 1
    if not least <= v <= most:
        raise InputError(file, key, f"an integer from {least} to {most} ({what})", text)
    return v


def _seconds(text: str, file: str, key: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise InputError(file, key, "a number of seconds", text) from None
    if not np.isfinite(v) or v < 0:
        raise InputError(file, key, "a finite number of seconds >= 0", text)
    return v


def _azure_time(text: str, file: str, where: str) -> float:
    """``YYYY-MM-DD HH:MM:SS.fffffff`` (UTC) -> seconds since the epoch (every fractional digit kept)."""
    key = f"{where}.TIMESTAMP"
    expected = "a time YYYY-MM-DD HH:MM:SS.fffffff (hour 0-23, minute and second 0-59)"
    parts = text.strip().split(" ")
    clock = _CLOCK.fullmatch(parts[-1]) if len(parts) == 2 else None
    if clock is None:
        raise InputError(file, key, expected, text)
    h, m, s = int(clock[1]), int(clock[2]), float(clock[3])
    if h > 23 or m > 59 or s >= 60:
        raise InputError(file, key, expected, text)
    try:
        base = dt.datetime.fromisoformat(parts[0]).replace(tzinfo=dt.timezone.utc).timestamp()
    except (ValueError, OverflowError):
        raise InputError(file, key, expected, text) from None
    if len(parts[0]) != 10:
        raise InputError(file, key, expected, text)
    return base + h * 3600 + m * 60 + s
