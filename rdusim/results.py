"""RunResult: what a run produced. Typed rows (the flat dotted metrics of results.json are
derived from them here, and only here), flat records, JSON round trip."""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Optional, Sequence

from orjson import OPT_PASSTHROUGH_DATACLASS, OPT_PASSTHROUGH_DATETIME, OPT_PASSTHROUGH_SUBCLASS
from orjson import dumps as _orjson_dumps

from rdusim import __version__, requests_file
from rdusim.config.files import what_is
from rdusim.errors import InputError
from rdusim.rows import from_metrics
from rdusim.rows.base import to_metrics

SCHEMA_MAJOR = 0


@dataclass(frozen=True)
class RunResult:
    workload_name: str
    kind: str                      # "coe" | "fusion" | "model"
    resolved: Mapping[str, Any]    # the workload as run (after --set), plain data
    archs: Mapping[str, Mapping[str, Any]]  # platform -> resolved arch spec, plain data
    seed: int
    # the flat dotted metrics written to results.json: derived from ``rows`` (plus any
    # metrics passed here, which must not share a key with them); read back from a file
    metrics: Optional[Mapping[str, float]] = None
    records: tuple[Mapping[str, Any], ...] = ()
    version: str = __version__
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # Chrome-trace events of a bounded window; written to trace.json by --trace, not to results.json
    trace: tuple[Mapping[str, Any], ...] = field(default=(), compare=False)
    # typed rows (rdusim.rows) the study produced; a loaded result reads them from metrics
    rows: tuple = field(default=(), compare=False)

    def __post_init__(self):
        if self.rows or self.metrics is None:
            object.__setattr__(self, "rows", tuple(self.rows))
            object.__setattr__(self, "metrics", metrics_of(self.rows, self.metrics))

    def typed_rows(self) -> list:
        """Every family's rows read from the metrics: the same for a fresh result and one
        loaded from results.json (the study's own rows are ``self.rows``)."""
        return from_metrics(self.metrics)

    def to_json(self, *, _raw_records: bool = False) -> dict:
        """Plain JSON data (``_raw_records``: records left as they are, for :func:`dumps_results`
        to encode one by one)."""
        return {
            "rdusim_version": self.version,
            "workload": {"name": self.workload_name, "kind": self.kind, "resolved": _plain(self.resolved)},
            "archs": _plain(self.archs),
            "seed": self.seed,
            "metrics": {k: metric_number(v) for k, v in sorted(self.metrics.items())},
            "records": _Records(self.records) if _raw_records else [_plain(r) for r in self.records],
            "extra": _plain(self.extra),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], file: str = "results.json") -> "RunResult":
        for key in ("rdusim_version", "workload", "metrics"):
            if key not in data:
                raise InputError(file, key, "an rdusim results.json with this key", "it missing")
        version = str(data["rdusim_version"])
        major = version.split(".")[0]
        if not major.isdigit() or int(major) != SCHEMA_MAJOR:
            raise InputError(file, "rdusim_version", f"a results file from rdusim {SCHEMA_MAJOR}.x", version)
        for key, kind in (("workload", Mapping), ("metrics", Mapping), ("records", list), ("seed", int)):
            if key in data and not isinstance(data[key], kind) or isinstance(data.get(key), bool):
                raise InputError(file, key, f"a JSON {'object' if kind is Mapping else kind.__name__}",
                                 type(data[key]).__name__)
        wl = data["workload"]
        return cls(workload_name=wl.get("name", "?"), kind=wl.get("kind", "?"),
                   resolved=wl.get("resolved", {}), archs=data.get("archs", {}),
                   seed=int(data.get("seed", 0)), metrics=dict(data["metrics"]),
                   records=tuple(data.get("records", ())), version=version,
                   extra=data.get("extra", {}))

    def write(self, out_dir: str | Path) -> Path:
        """Write results.json atomically (never half-written); per-request records go to
        requests.csv beside it (rdusim.requests_file), a pointer row in their place."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        data = self.to_json(_raw_records=True)
        kept, rows = requests_file.split(self.records)
        if rows:
            atomic_write_text(out / requests_file.REQUESTS_CSV, requests_file.csv_text(rows))
            data["records"] = _Records(kept)
        return atomic_write_text(out / "results.json", results_pieces(data))


def metrics_of(rows, metrics: Optional[Mapping[str, float]] = None) -> dict:
    """The flat metrics of results.json from typed rows (each row's one key template), plus
    ``metrics`` (keys the study wrote itself; none may clash with a row's)."""
    out = dict(metrics) if metrics else {}
    return to_metrics(rows, out)


def dumps_results(data: Mapping[str, Any]) -> str:
    """results.json text, laid out one top-level key, metric or record per line so the file
    stays readable and diffable; each record compact (no spaces: the file holds tens of
    thousands), encoded by orjson (about 8x faster than the standard library's C encoder,
    the same numbers: shortest round-trip float text). Parses to exactly ``data``."""
    return results_bytes(data).decode()


def results_bytes(data: Mapping[str, Any]) -> bytes:
    """:func:`dumps_results` as UTF-8 bytes."""
    return b"".join(results_pieces(data))


def results_pieces(data: Mapping[str, Any]) -> list:
    """:func:`results_bytes` in pieces (bytes-like) to write one after another: the records'
    megabytes are not copied into one buffer first (what :meth:`RunResult.write` writes)."""
    enc = json.dumps
    out: list = [b"{\n"]
    for i, (key, value) in enumerate(data.items()):
        out.append(f"{',' if i else ''}{chr(10) if i else ''} {enc(key)}: ".encode())
        if key == "metrics" and type(value) is dict and value:
            body = ",\n".join(f"  {enc(k)}: {enc(v)}" for k, v in value.items())
            out.append(b"{\n" + body.encode() + b"\n }")
        elif key == "records" and type(value) in (_Records, list) and value:
            out += [b"[\n  ", _records_bytes(value), b"\n ]"]
        else:
            out.append(enc(value).encode())
    out.append(b"\n}")
    return out


class _Records(tuple):
    """Records not yet made plain: :func:`dumps_results` encodes each (:func:`_record_json`)."""


# orjson hands these to ``default`` instead of encoding them its own way; ours refuses them, so
# such a record is made plain first (:func:`_plain` decides what a dataclass or a str subclass
# becomes). Enums orjson encodes by value, as _plain does.
_RAW = OPT_PASSTHROUGH_DATACLASS | OPT_PASSTHROUGH_DATETIME | OPT_PASSTHROUGH_SUBCLASS


def _compact(plain_data: Any) -> str:
    """Plain JSON data (dicts with str keys, lists, str, int, float, bool, None; no NaN) as
    compact JSON text: orjson, or the standard library for what orjson refuses (integers
    beyond 64 bits, lone surrogates)."""
    try:
        return _orjson_dumps(plain_data).decode()
    except TypeError:            # orjson.JSONEncodeError is a TypeError
        return json.dumps(plain_data, separators=(",", ":"))


def _records_bytes(records: Sequence[Any]) -> bytes | memoryview:
    """The records one per line, each ``_record_json(r)``, joined by ``",\n  "``. Plain
    dicts (every study's records) are encoded in one orjson call and the line breaks put
    between them: a record's end and the next one's start are the only ``},{`` of the text
    unless a record holds that text itself (a string, a list of dicts), which the count of
    ``},{`` shows -- then each record is encoded alone."""
    if all(type(r) is dict for r in records):
        try:
            text = _orjson_dumps(records if type(records) is list else list(records), option=_RAW)
        except TypeError:         # something orjson refuses: _record_json makes it plain
            text = b""
        if text and text.count(b"},{") == len(records) - 1:
            return memoryview(text.replace(b"},{", b"},\n  {"))[1:-1]   # the list's brackets dropped
    return ",\n  ".join(_record_json(r) for r in records).encode()


def _record_json(r: Any) -> str:
    """One record as compact JSON text, exactly ``_compact(_plain(r))``. A dict of plain
    values (the kernel and request records) is encoded as it is -- orjson writes a
    non-finite float as null and an enum as its value, as :func:`_plain` makes them, and
    refuses non-str keys, mapping proxies, dataclasses, sets and numpy values -- anything
    it refuses is made plain first."""
    if type(r) is dict:
        try:
            return _orjson_dumps(r, option=_RAW).decode()
        except TypeError:
            pass
    return _compact(_plain(r))


def load_result(path: str | Path) -> RunResult:
    p = Path(path)
    if (found := what_is(p)) is not None:
        raise InputError(str(p), "", "an existing results.json", found)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(str(p), "", "valid JSON", str(exc)) from None
    if not isinstance(data, dict):
        raise InputError(str(p), "", "a JSON object", type(data).__name__)
    if isinstance(data.get("records"), list):       # request records kept beside it (requests.csv)
        data["records"] = requests_file.expand(data["records"], p.parent)
    return RunResult.from_json(data, str(p))


def atomic_write_text(path: Path, text: str | list) -> Path:
    """Write ``text`` (or UTF-8 bytes-like pieces, one after another) to ``path``
    atomically: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.writelines([text.encode("utf-8")] if isinstance(text, str) else text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)      # mkstemp makes files private; results are not
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def metric_number(v: Any) -> Any:
    """A metric value as stored: booleans 0/1, non-finite floats None."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _plain(obj: Any) -> Any:
    """Frozen dataclasses, enums, mapping proxies and tuples -> JSON-able data.

    Exact built-in types (the bulk of records) take a fast path that gives what the
    general branches below give them; anything else goes through those branches."""
    t = type(obj)
    if t is str or t is int or t is bool or obj is None:
        return obj
    if t is float:
        return obj if math.isfinite(obj) else None
    if t is dict:
        return {(k if type(k) is str else str(k)): _plain(v) for k, v in obj.items()}
    if t is list or t is tuple:
        return [_plain(v) for v in obj]
    return _plain_general(obj)


def _plain_general(obj: Any) -> Any:
    import dataclasses
    import enum

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


plain = _plain
