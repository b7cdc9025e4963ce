"""One explicit cache for a run, keyed by content.

A :class:`RunCache` is made by whoever starts a run (a study, a sweep worker, a test)
and passed down to the engines; nothing is cached at module level, so two runs in one
process share nothing unless they are handed the same cache. Entries live in
namespaces ("kernel", "plan", "step", ...) and are keyed by :func:`content_key` of the
inputs the computation reads, derived from the frozen dataclasses themselves (every
field, recursively), never listed by hand: add a field to a spec and it is in the key.
A field that names a thing without changing what is computed from it (a kernel's op
names) is left out by marking it ``field(metadata={"key": False})``.

With a ``directory`` (``--cache-dir``), values are also pickled to disk under a digest
of (namespace, key, rdusim version, a fingerprint of rdusim's source files), so a
changed simulator never reads an old entry.

    cache = RunCache()
    run = cache.get_or_compute("kernel", (hw_view, tiles, kernel), lambda: simulate(...))

Ambient state, and why: :func:`using` makes a cache the run's for the calls inside it,
and :func:`active_cache` finds it (a context variable). Every value cached is a pure
function of its content key, so which cache is active, or whether one is, never changes a
result, only what is recomputed: the cache is a memo, which is why the deep builders
(graphs, kernel times, workspaces) find it rather than take it as an argument. The
module-level tables below (``_FIELDS``, ``_KINDS``, ``_INTERNED``, ``_FINGERPRINT``) are
per-process memos of pure functions of a type or of the source files, filled on first use.
"""

from __future__ import annotations

import copyreg
import dataclasses
import enum
import hashlib
import io
import os
import pickle
import tempfile
import weakref
from collections import Counter
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Hashable, Iterator, Mapping

from rdusim import __version__
from rdusim.errors import InputError

_FIELDS: dict[type, tuple[tuple[str, ...], str, bool]] = {}
_MEMO = "_rdusim_content_key"


def _key_fields(cls: type) -> tuple[tuple[str, ...], str, bool]:
    got = _FIELDS.get(cls)
    if got is None:
        names = tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("key", True))
        got = _FIELDS[cls] = (names, f"{cls.__module__}.{cls.__qualname__}", cls.__dataclass_params__.frozen)
    return got


def content_key(obj: Any) -> Hashable:
    """A hashable, order-independent, process-independent value that is equal for two
    objects exactly when every field (recursively) of a frozen dataclass, enum, tuple,
    list, mapping, set, number or string is equal. Types are part of the key (1, 1.0 and
    True differ; so do two dataclasses with the same fields). Anything else is an error:
    an input that cannot be keyed must not be cached silently."""
    t = type(obj)
    if t is str or t is int or obj is None:
        return obj
    if t is float:
        return ("f", repr(obj))          # -0.0 and 0.0 differ; every NaN is the same key
    if t is bool:
        return ("b", obj)
    if t is tuple or t is list:
        return ("t", tuple([content_key(v) for v in obj]))
    shape = _FIELDS.get(t)               # a dataclass seen before: no type tests
    kind = _DATACLASS if shape is not None else (_KINDS.get(t) or _kind_of(t))
    if kind is _DATACLASS:
        memo = getattr(obj, "__dict__", None)
        if memo is not None:
            got = memo.get(_MEMO)
            if got is not None:
                return got
        names, qual, frozen = shape or _key_fields(t)
        key = _Key.interned((qual, tuple([content_key(getattr(obj, n)) for n in names])))
        if frozen and memo is not None:
            memo[_MEMO] = key    # frozen: computed once per object (as functools.cached_property does)
        return key
    if kind is _ENUM:
        return ("e", f"{t.__module__}.{t.__qualname__}", content_key(obj.value))
    if kind is _MAPPING:
        return ("m", tuple(sorted(((content_key(k), content_key(v)) for k, v in obj.items()), key=repr)))
    if kind is _SET:
        return ("s", tuple(sorted((content_key(v) for v in obj), key=repr)))
    if kind is _SCALAR:    # numpy scalars, str subclasses...
        return (f"{t.__module__}.{t.__qualname__}", repr(obj))
    raise TypeError(f"content_key: cannot key a {t.__module__}.{t.__qualname__}; "
                    "use frozen dataclasses, enums, tuples, mappings, numbers and strings")


_DATACLASS, _ENUM, _MAPPING, _SET, _SCALAR, _OTHER = "dataclass", "enum", "mapping", "set", "scalar", "other"
_KINDS: dict[type, str] = {}


def _kind_of(t: type) -> str:
    """Which branch of :func:`content_key` an instance of ``t`` takes (the type tests made
    once per type: ``dataclasses.is_dataclass`` and the ABC checks are slow)."""
    if hasattr(t, "__dataclass_fields__") and not issubclass(t, type):    # dataclasses.is_dataclass(obj)
        kind = _DATACLASS
    elif issubclass(t, enum.Enum):
        kind = _ENUM
    elif issubclass(t, (dict, MappingProxyType, Mapping)):
        kind = _MAPPING
    elif issubclass(t, (set, frozenset)):
        kind = _SET
    elif issubclass(t, (int, float, str, bytes)):
        kind = _SCALAR
    else:
        kind = _OTHER
    _KINDS[t] = kind
    return kind


class _Key:
    """A dataclass's content key: the nested tuple with its hash computed once. Memoized
    on frozen objects, so looking the same spec up again hashes nothing (a dict compares
    identical keys by identity first)."""

    __slots__ = ("value", "_hash", "__weakref__")

    def __init__(self, value: tuple):
        self.value = value
        self._hash = hash(value)

    @classmethod
    def interned(cls, value: tuple) -> "_Key":
        """The one live key equal to ``value``: two specs with the same content (a sweep
        point reloads its arch) then share a key object, and comparing keys is an identity
        test instead of a walk through their nested content. Canonical objects only, no
        values: a key that nothing holds any more is dropped (weak references)."""
        key = cls(value)
        return _INTERNED.setdefault(key, key)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or (type(other) is _Key and self._hash == other._hash and self.value == other.value)

    def __repr__(self) -> str:
        return repr(self.value)      # digests (--cache-dir) see the plain nested tuple


_INTERNED: "weakref.WeakValueDictionary[_Key, _Key]" = weakref.WeakValueDictionary()


def digest(namespace: str, key: Hashable) -> str:
    """A stable hex digest of a namespaced content key, this rdusim version and its source."""
    text = repr((namespace, key, __version__, source_fingerprint()))
    return hashlib.sha256(text.encode()).hexdigest()


_FINGERPRINT: list[str] = []


def source_fingerprint() -> str:
    """sha256 of rdusim's Python sources (persisted entries die with any code change)."""
    if not _FINGERPRINT:
        h = hashlib.sha256()
        root = Path(__file__).resolve().parent
        for p in sorted(root.rglob("*.py")):
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
        _FINGERPRINT.append(h.hexdigest())
    return _FINGERPRINT[0]


class RunCache:
    """Computed values of one run (or one sweep worker), by namespace and content key.

    ``get_or_compute(namespace, key_obj, fn)`` returns the value for ``key_obj`` (any
    value :func:`content_key` accepts), calling ``fn()`` the first time. Values must be
    immutable (frozen dataclasses, tuples, mapping proxies): callers share them.
    ``directory``: also persist values (pickles) there across processes and runs.
    ``max_entries``: per namespace, oldest dropped first (None: unbounded).
    """

    def __init__(self, directory: str | Path | None = None, *, max_entries: int | None = 65536):
        self.directory = Path(directory) if directory is not None else None
        self.max_entries = max_entries
        self._store: dict[str, dict[Hashable, Any]] = {}
        self.hits: Counter[str] = Counter()
        self.misses: Counter[str] = Counter()
        self.disk_hits: Counter[str] = Counter()
        self.unpersisted: Counter[str] = Counter()     # values that could not be pickled
        self.write_errors: Counter[str] = Counter()    # values the directory could not take (full, read-only)
        self.last_write_error = ""

    def get_or_compute(self, namespace: str, key_obj: Any, fn: Callable[[], Any]) -> Any:
        return self.get_or_compute_hit(namespace, key_obj, fn)[0]

    def get_or_compute_hit(self, namespace: str, key_obj: Any, fn: Callable[[], Any]) -> tuple[Any, bool]:
        """The value and whether it was already known (in memory or on disk)."""
        key = content_key(key_obj)
        table = self._store.setdefault(namespace, {})
        if key in table:
            self.hits[namespace] += 1
            return table[key], True
        path = self._path(namespace, key)
        if path is not None and path.is_file():
            try:
                value = pickle.loads(path.read_bytes())
            except Exception:       # a torn or foreign file: recompute and overwrite it
                value = _MISSING
            if value is not _MISSING:
                self.hits[namespace] += 1
                self.disk_hits[namespace] += 1
                self._put(table, key, value)
                return value, True
        self.misses[namespace] += 1
        value = fn()
        self._put(table, key, value)
        if path is not None:
            try:
                data = _dumps(value)
            except (TypeError, AttributeError, pickle.PicklingError):   # kept in memory only
                self.unpersisted[namespace] += 1
            else:
                try:
                    _atomic_write_bytes(path, data)
                except OSError as exc:      # a full or read-only disk: the value stays in memory
                    self.write_errors[namespace] += 1
                    self.last_write_error = exc.strerror or str(exc)
        return value, False

    def count_hits(self, namespace: str, n: int = 1) -> None:
        """Count ``n`` reuses of a value the caller already looked up here with the same key
        (a kernel repeated in one plan is looked up once): the statistics stay those of one
        lookup per use."""
        self.hits[namespace] += n

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``get_or_compute("memo", key, compute)``: the ``memo(key, compute)`` form."""
        return self.get_or_compute("memo", key, compute)

    def _put(self, table: dict, key: Hashable, value: Any) -> None:
        table[key] = value
        if self.max_entries is not None and len(table) > self.max_entries:
            del table[next(iter(table))]

    def _path(self, namespace: str, key: Hashable) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / namespace / f"{digest(namespace, key)}.pickle"

    def keys(self, namespace: str) -> set:
        """The content keys ``namespace`` holds now (in memory)."""
        return set(self._store.get(namespace, ()))

    def __len__(self) -> int:
        return sum(len(t) for t in self._store.values())

    def stats(self) -> dict[str, dict[str, int]]:
        names = sorted(set(self.hits) | set(self.misses))
        return {n: {"hits": self.hits[n], "misses": self.misses[n], "disk_hits": self.disk_hits[n]} for n in names}


_MISSING = object()


def cache_at(directory: str | Path | None) -> RunCache | None:
    """The run's cache for ``--cache-dir`` (None without one). A path that is not a
    directory, or one this process cannot create or write into, is an InputError: found
    before anything runs, not as a failure of every run (or sweep point) that saves."""
    if directory is None:
        return None

    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise InputError(str(path), "--cache-dir", "a directory (it is created when missing)", "a file")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".rdusim-probe.")   # access() is not proof (root, ro mounts)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(str(path), "--cache-dir", "a directory rdusim can create and write into",
                         f"{exc.strerror or exc}") from None
    return RunCache(path)


def read_only(d: dict) -> MappingProxyType:
    """Rebuilds a pickled read-only mapping."""
    return MappingProxyType(d)


def _reduce_mappingproxy(m: MappingProxyType):
    return read_only, (dict(m),)


def _dumps(value: Any) -> bytes:
    """Pickle ``value``; read-only mappings (frozen results) pickle as what they wrap."""
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {**copyreg.dispatch_table, MappingProxyType: _reduce_mappingproxy}
    pickler.dump(value)
    return buf.getvalue()
_ACTIVE: ContextVar[RunCache | None] = ContextVar("rdusim_run_cache", default=None)


@contextmanager
def using(cache: RunCache) -> Iterator[RunCache]:
    """Make ``cache`` the run's cache for engine calls that are not handed one explicitly
    (a bridge for call paths that do not pass it down yet). Scoped: restored on exit."""
    token = _ACTIVE.set(cache)
    try:
        yield cache
    finally:
        _ACTIVE.reset(token)


def active_cache(given: RunCache | None = None) -> RunCache:
    """``given``, else the cache of the enclosing :func:`using` block, else a new empty
    one (nothing outlives a run unless someone holds the cache)."""
    if given is not None:
        return given
    current = _ACTIVE.get()
    return current if current is not None else RunCache()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
