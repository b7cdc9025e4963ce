"""A user's input file before it is read: a regular file of bounded size, or an InputError
that says what the path is instead (missing, a directory, a symbolic-link loop, a device,
unreadable, too large) rather than "no such file" for all of them."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from rdusim.errors import InputError

MAX_YAML_BYTES = 4 * 2 ** 20       # a workload, arch, model, stack or routing file (the shipped ones are < 12 KB)
MAX_TRACE_BYTES = 1024 * 2 ** 20   # a request trace CSV (the full Azure 2023 traces are < 30 MB)


def what_is(path: str | Path) -> str | None:
    """None when ``path`` is an existing regular file (through symbolic links), else what it is."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        if exc.errno == errno.ENAMETOOLONG:
            return "a path too long for the file system"
        if exc.errno == errno.EACCES:
            return "a path whose folder cannot be read (permission denied)"
        if exc.errno == errno.ENOTDIR:
            return "no such file (a part of the path is not a folder)"
        if os.path.islink(p):
            return "a broken symbolic link (its target does not exist)"
        return "no such file"
    if stat.S_ISDIR(st.st_mode):
        return "a directory"
    if stat.S_ISREG(st.st_mode):
        return None
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return "a device, not a regular file"
    if stat.S_ISFIFO(st.st_mode):
        return "a named pipe, not a regular file"
    if stat.S_ISSOCK(st.st_mode):
        return "a socket, not a regular file"
    return "not a regular file"


def check_input_file(path: str | Path, expected: str, max_bytes: int, *, file: str | None = None,
                     key: str = "") -> int:
    """Raise an InputError unless ``path`` is a readable regular file of at most ``max_bytes``;
    returns its size. The error names ``file``/``key`` when given (the workload field that
    points here), else the path itself."""
    where = str(path) if file is None else file
    found = what_is(path)
    if found is not None:
        raise InputError(where, key, expected, found if file is None else f"{path}: {found}")
    size = Path(path).stat().st_size
    if size > max_bytes:
        raise InputError(str(path), "", f"{expected} of at most {_mib(max_bytes)}",
                         f"{_mib(size)} (rdusim does not read larger inputs)")
    if not os.access(path, os.R_OK):
        raise InputError(where, key, expected, f"{path}: a file rdusim may not read (permission denied)")
    return size


def _mib(n: float) -> str:
    return f"{n / 2 ** 20:.1f} MiB" if n >= 2 ** 20 else f"{n:.0f} bytes"
