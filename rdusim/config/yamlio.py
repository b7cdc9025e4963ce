"""Reading YAML files and applying ``--set KEY=VALUE`` overrides to parsed data.

Ambient state, and why: :func:`remembering_files` sets a context variable holding the
files parsed so far, so a file read again unchanged (same path, size and modification
time) is not parsed again. It is a memo of a pure function of the file's bytes: whether
it is set never changes what :func:`load_yaml` returns (a copy of the parse), only how
often YAML is parsed, so it is not passed down as an argument through every loader.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml

from rdusim.config.files import MAX_YAML_BYTES, check_input_file
from rdusim.errors import InputError

# libyaml's safe loader when PyYAML has it (about 10x faster on the arch files), else pure Python
_BASE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, first: Any, again: Any):
        super().__init__(f"duplicate key {key!r}")
        self.key, self.first, self.again = key, first, again


class _Loader(_BASE_LOADER):
    """The safe loader, except that a key given twice in one mapping is an error (PyYAML
    keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    if key in seen:
                        raise DuplicateKey(key, seen[key], key_node.start_mark)
                    seen[key] = key_node.start_mark
                except TypeError:         # an unhashable key: the base constructor reports it
                    pass
        return super().construct_mapping(node, deep=deep)


_LOADER = _Loader


def _at(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "somewhere"


_FILES: ContextVar[dict | None] = ContextVar("rdusim_parsed_yaml", default=None)


@contextmanager
def remembering_files(store: dict | None = None) -> Iterator[dict]:
    """Within the block, a YAML file read again (unchanged: same path, size and
    modification time) is not parsed again: a sweep loads the same arch, stack and model
    files for every point. ``store``: keep the parsed files across blocks (a sweep worker)."""
    store = {} if store is None else store
    token = _FILES.set(store)
    try:
        yield store
    finally:
        _FILES.reset(token)


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file; a missing or malformed file is an InputError."""
    p = Path(path)
    check_input_file(p, "an existing YAML file", MAX_YAML_BYTES)
    store = _FILES.get()
    if store is None:
        return _parse(p)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in store:
        store[key] = _parse(p)
    return copy.deepcopy(store[key])       # callers may change what they are given


def _parse(p: Path) -> Any:
    try:
        with p.open(encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=_LOADER)
    except DuplicateKey as exc:
        raise InputError(str(p), str(exc.key), "each key once in a mapping",
                         f"it at {_at(exc.first)} and again at {_at(exc.again)}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(str(p), "", "well-formed YAML", f"{problem} at {where}") from None
    except UnicodeDecodeError:
        raise InputError(str(p), "", "a UTF-8 text file", "undecodable bytes") from None
    if data is None:
        raise InputError(str(p), "", "a YAML mapping", "an empty file")
    return data


def parse_set(item: str) -> tuple[str, Any]:
    """Split one ``KEY=VALUE`` flag; VALUE is parsed as YAML (numbers, lists, booleans)."""
    if "=" not in item:
        raise InputError("--set", item, "KEY=VALUE", item)
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise InputError("--set", key, "a dotted key such as batch_size or arch.sn40l.hbm.capacity_bytes", item)
    try:
        value = yaml.load(raw, Loader=_LOADER) if raw.strip() else ""
    except DuplicateKey as exc:
        raise InputError("--set", key, "each key once in a mapping", f"{exc.key!r} twice") from None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            pass
    return key, value


def apply_overrides(data: Any, overrides: Iterable[tuple[str, Any]], file: str,
                    *, sourced: bool = False) -> Any:
    """Return a copy of ``data`` with each dotted key set. Missing mappings along the path
    are created, so a field left at its default can be set; a misspelt key is still caught,
    by the strict conversion that follows (unknown key). In *sourced* data (arch files) a
    number is stored as ``{value, source}`` with a source saying it was overridden."""
    out = copy.deepcopy(data)
    for key, value in overrides:
        parts = key.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            node = _child(node, part, ".".join(parts[: i + 1]), file)
        last = parts[-1]
        if sourced and _is_sourced_leaf(node, last, value):
            value = {"value": value, "source": f"override --set {key}={value!r}"}
        if isinstance(node, list):
            node[_index(node, last, key, file)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise InputError(file, key, "a mapping to set a key in", node)
    return out


def _is_sourced_leaf(node: Any, last: str, value: Any) -> bool:
    """In an arch file, a scalar set where a ``{value, source}`` number stands (or would
    stand) is stored in that shape, so a bad value is reported against the number's unit."""
    if isinstance(value, (dict, list)) or value is None or not isinstance(node, dict):
        return False
    current = node.get(last)
    if isinstance(current, dict) and {"value", "source"} <= set(current):
        return True
    return current is None and not isinstance(value, str)


def _child(node: Any, part: str, key: str, file: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, key, file)]
    if not isinstance(node, dict):
        raise InputError(file, key, "a mapping", node)
    if part not in node or node[part] is None:
        node[part] = {}
    return node[part]


def _index(node: list, part: str, key: str, file: str) -> int:
    try:
        idx = int(part)
    except ValueError:
        raise InputError(file, key, "a list index", part) from None
    if not 0 <= idx < len(node):
        raise InputError(file, key, f"an index in 0..{len(node) - 1}", idx)
    return idx
