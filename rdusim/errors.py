"""The one error type for bad user input (names file, dotted key, expected, found), and
how the command line ends: its exit statuses, SIGTERM, and a report of an unexpected error."""

from __future__ import annotations

import errno
import os
import signal
import sys
from contextlib import contextmanager
from typing import Iterator, Optional
from rdusim import __version__

# errors of the place written to, not of rdusim: a full disk, a read-only or forbidden folder
WRITE_ERRNOS = frozenset(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EROFS, errno.EACCES,
                                     errno.EPERM, errno.EFBIG) if e is not None)


class InputError(Exception):
    """Bad input from a user file or flag. The CLI prints it and exits 2."""

    def __init__(self, file: str, key: str, expected: str, found: object):
        self.file = str(file)
        self.key = key
        self.expected = expected
        self.found = found
        # args are the constructor's: SimPy (and pickle, across worker processes) rebuild an
        # exception as type(exc)(*exc.args), which must give the same error back
        super().__init__(self.file, key, expected, found)

    def __str__(self) -> str:
        where = self.file if not self.key else f"{self.file}: {self.key}"
        return f"{where}: expected {self.expected}, found {_short(self.found)}"


def _short(found: object) -> str:
    text = found if isinstance(found, str) else repr(found)
    return text if len(text) <= 200 else text[:197] + "..."


# -- how the command line ends ---------------------------------------------------------------

EXIT_INPUT = 2           # bad input, or a folder rdusim cannot write into
EXIT_INTERNAL = 70       # an unexpected error in rdusim itself (sysexits.h EX_SOFTWARE)
EXIT_INTERRUPTED = 130   # Ctrl-C (128 + SIGINT)
EXIT_PIPE = 141          # stdout closed early (128 + SIGPIPE)
EXIT_TERMINATED = 143    # SIGTERM (128 + SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is, so it stops as on Ctrl-C: a sweep keeps its
    finished points, a run's half-written files are removed; exit status 143."""


def _raise_terminated(signum, frame):
    raise Terminated()


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM raises :class:`Terminated`."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _default_sigterm_in_child() -> None:
    """A forked worker dies of SIGTERM at once (its parent stops workers that way) instead of
    raising in the parent's code it inherited."""
    if signal.getsignal(signal.SIGTERM) is _raise_terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_default_sigterm_in_child)


def write_crash_report(command: str, argv: Optional[list], exc: BaseException) -> tuple[Optional[str], str]:
    """Write the traceback of an unexpected error to a file in the temp folder; return its
    path (None if it could not be written) and why not."""
    import platform
    import shlex
    import tempfile
    import traceback


    text = (f"rdusim {__version__}, Python {platform.python_version()} on {platform.platform()}\n"
            f"command: {command} {shlex.join(str(a) for a in (argv if argv is not None else sys.argv[1:]))}\n"
            f"cwd: {os.getcwd() if os.path.isdir('.') else '?'}\n\n"
            + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    try:
        name = command.removeprefix("rdusim").strip().replace(" ", "-") or "rdusim"
        fd, path = tempfile.mkstemp(prefix=f"rdusim-crash-{name}-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as err:
        return None, str(err)
    return path, ""


def crash_line(command: str, exc: BaseException, path: Optional[str], why: str) -> str:
    """The one line printed for an unexpected error."""
    first = (str(exc).splitlines() or [""])[0]
    what = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    where = (f"the full traceback is in {path}" if path is not None
             else f"the traceback could not be saved ({why})")
    return f"{command}: internal error ({_short(what)}); this is a bug in rdusim, please report it -- {where}"


def ending(exc: BaseException, command: str, argv: Optional[list]) -> tuple[str, int]:
    """The one line a command prints when ``exc`` ends it, and its exit status: bad input
    (or a folder it cannot write: full, read-only) 2; Ctrl-C 130; SIGTERM 143; anything else
    70, its traceback saved to a file the line names."""
    if isinstance(exc, InputError):
        return f"rdusim: error: {exc}", EXIT_INPUT
    if isinstance(exc, Terminated):
        return "rdusim: terminated", EXIT_TERMINATED
    if isinstance(exc, KeyboardInterrupt):
        return "rdusim: interrupted", EXIT_INTERRUPTED
    if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
        return (f"rdusim: error: {exc.filename or command}: expected a place rdusim can write to, "
                f"found {exc.strerror or exc}"), EXIT_INPUT
    path, why = write_crash_report(command, argv, exc)
    return crash_line(command, exc, path, why), EXIT_INTERNAL
