"""Output folders: whose they are, one writer at a time, nothing partial.

A folder rdusim writes into holds ``manifest.json``: ``{"written_by": "rdusim X.Y.Z",
"kind": "run" | "sweep" | "report", "files": [paths relative to the folder]}``. rdusim
removes or replaces only files its manifest lists; every other file in the folder is the
user's and is kept.

- :func:`check_target`: the folder is new, empty, or one rdusim wrote for the same kind of
  output (a run's folder is never a sweep's); a non-empty folder without a manifest is
  refused unless ``--force`` (which still removes nothing).
- :func:`locked`: one rdusim command at a time writes into a folder (runs, reports and
  sweeps take the same lock, ``.rdusim.lock``).
- :func:`staged`: a command writes its files into a hidden staging folder inside the
  output folder; only when all of them are written are they moved into place (renames,
  which need no space) and listed in the manifest. A failure (a full disk, Ctrl-C) removes
  the staging folder: the output folder is as it was before the command.

``check_writable`` finds an unusable ``--out`` before anything is simulated.

Module-level state: ``_HELD``, the lock descriptors this process holds (a fact about the
process, which a forked worker must close), and nothing that affects what is written.
"""

from __future__ import annotations

import enum
import json
import os
import shutil
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Optional

from rdusim import __version__
from rdusim.errors import WRITE_ERRNOS, InputError
from rdusim.results import atomic_write_text

MANIFEST = "manifest.json"
LOCK = ".rdusim.lock"
_OLD_LOCKS = (".sweep.lock",)          # written by earlier versions; still rdusim's
STAGING = ".rdusim-staging."
_PROBE = ".rdusim-probe."
REPORT_FILES = ("index.html", "report.md", "figures/*.png", "tables/*.csv")   # kept for callers of record()


class Kind(enum.Enum):
    """What a folder holds; each kind keeps its own folder."""

    RUN = "run"          # rdusim run: results.json, requests.csv (and trace.json, the report)
    SWEEP = "sweep"      # rdusim sweep: sweep.sqlite, sweep.csv (and its plots and report)
    REPORT = "report"    # rdusim report --out elsewhere: a report alone

    @property
    def what(self) -> str:
        return {Kind.RUN: "a run's results (results.json)", Kind.SWEEP: "a sweep (sweep.sqlite)",
                Kind.REPORT: "a report rendered from results kept elsewhere"}[self]


# the files a kind's own command writes (a re-rendered report replaces every other listed file)
OWN_FILES = {Kind.RUN: ("results.json", "requests.csv", "trace.json"), Kind.SWEEP: ("sweep.sqlite", "sweep.csv"),
             Kind.REPORT: ()}


def check_writable(out: Path, flag: str = "--out") -> None:
    """``out`` is, or can be created as, a folder we can write files into."""
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        what = "is a file" if probe == out else f"lies under the file {probe}"
        raise InputError(flag, "", "a folder to write results into", f"{str(out)!r}, which {what}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(flag, "", "a folder you can write into", f"{str(out)!r} ({probe} is not writable)")
    try:     # access() says yes to root and on read-only mounts; creating something is the proof
        if probe == out:
            fd, tmp = tempfile.mkstemp(dir=out, prefix=_PROBE)
            os.close(fd)
            os.unlink(tmp)
        else:
            os.rmdir(tempfile.mkdtemp(dir=probe, prefix=_PROBE))
    except OSError as exc:
        raise InputError(flag, "", "a folder you can write into",
                         f"{str(out)!r} ({probe}: {exc.strerror})") from None


def read_manifest(out: Path) -> Optional[dict]:
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), list) else None


def kind_of(out: Path) -> Optional[Kind]:
    """What ``out`` holds: its manifest's kind; a sweep table without one (an earlier
    version's sweep); a manifest without a kind is an earlier version's run. None: rdusim
    did not write the folder."""
    data = read_manifest(out)
    sweep = (out / OWN_FILES[Kind.SWEEP][0]).is_file()
    if data is not None and data.get("kind") in {k.value for k in Kind}:
        return Kind(data["kind"])
    if sweep:
        return Kind.SWEEP
    return Kind.RUN if data is not None else None


def _ours(name: str) -> bool:
    return name in (LOCK, *_OLD_LOCKS) or name.startswith((STAGING, _PROBE))


def foreign_entries(out: Path, ignore: Iterable[Path] = ()) -> list[str]:
    """Entries of ``out`` (top level) rdusim did not write, in a folder without a manifest."""
    if not out.is_dir():
        return []
    skip = {Path(p).resolve() for p in ignore}
    return sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir()
                  if not _ours(p.name) and p.resolve() not in skip)


def check_target(out: Path, kind: Kind, *, force: bool = False, flag: str = "--out",
                 ignore: Iterable[Path] = ()) -> None:
    """``out`` may receive output of ``kind``: writable, and new, empty, or rdusim's own
    folder of that kind (``force``: any folder without a manifest, removing nothing).
    ``ignore``: files of ours the command was pointed at (a results.json to render)."""
    check_writable(out, flag)
    if not out.is_dir():
        return
    found = kind_of(out)
    if found is not None and found != kind:
        raise InputError(flag, "", f"a folder for {kind.what}: new, empty, or written by an earlier such command",
                         f"{str(out)!r}, which holds {found.what}; runs, sweeps and reports each keep their own "
                         "folder (choose another one)")
    if found is None and not force:
        foreign = foreign_entries(out, ignore)
        if foreign:
            shown = ", ".join(foreign[:4]) + (", ..." if len(foreign) > 4 else "")
            raise InputError(flag, "", "an empty folder or one rdusim wrote (listed in its manifest.json); "
                             "--force writes into it anyway and removes nothing",
                             f"{str(out)!r}, which holds {len(foreign)} entr{'y' if len(foreign) == 1 else 'ies'} "
                             f"rdusim did not write ({shown})")


# -- one writer per folder ---------------------------------------------------------------

# lock descriptors this process holds. A forked child (a pool worker) closes its copies at
# once, so a lock lives exactly as long as the process that took it: a worker outliving a
# killed parent cannot keep a folder locked (the kernel drops a dead process's flock).
_HELD: set[int] = set()


def _close_inherited_locks() -> None:
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited_locks)


def acquire(out: Path, command: str) -> int:
    """Take the folder's lock (``out`` exists) for ``command`` or fail at once with the
    process holding it. Returns the descriptor for :func:`release`."""
    import fcntl

    path = out / LOCK
    while True:
        fd = os.open(str(path), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 128, 0).decode("ascii", "replace").split()
            os.close(fd)
            pid = holder[0] if holder and holder[0].isdigit() else None
            who = f"another rdusim {holder[1] if len(holder) > 1 else 'command'}" + (f" (process {pid})" if pid else "")
            raise InputError(str(out), "", "no other rdusim command writing into this folder",
                             f"it locked by {who}, still running") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:              # not a lock file its last holder removed while we waited for it
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {command}\n".encode(), 0)
    _HELD.add(fd)
    return fd


def release(out: Path, fd: Optional[int]) -> None:
    """Give the lock up (the lock file goes with it)."""
    if fd is None or fd not in _HELD:
        return
    _HELD.discard(fd)
    try:
        os.unlink(out / LOCK)       # while still holding it: no one can have taken it meanwhile
    except OSError:
        pass
    os.close(fd)


@contextmanager
def locked(out: Path, command: str) -> Iterator[Path]:
    """Hold ``out``'s lock (creating the folder); leftovers of a killed command (staging
    folders) are removed first. A folder this call created is removed again if nothing
    was written into it."""
    with removed_if_empty(out):
        out.mkdir(parents=True, exist_ok=True)
        fd = None
        try:
            fd = acquire(out, command)
            for stale in out.glob(STAGING + "*"):
                shutil.rmtree(stale, ignore_errors=True)
            yield out
        finally:
            release(out, fd)


@contextmanager
def removed_if_empty(out: Path) -> Iterator[None]:
    """The folders up to ``out`` that do not exist yet are removed again after the block
    if they are empty then (a command that wrote nothing leaves no empty folder)."""
    created = []
    p = out
    while not p.exists() and p.parent != p:
        created.append(p)
        p = p.parent
    try:
        yield
    finally:
        for d in created:              # deepest first; only while empty
            try:
                d.rmdir()
            except OSError:
                break


# -- writing: all or nothing -----------------------------------------------------------------

@contextmanager
def staged(out: Path, kind: Kind, *, replace_own: bool = True, force: bool = False, flag: str = "--out",
           adopt: Iterable[str] = ()) -> Iterator[Path]:
    """Yield a staging folder inside ``out`` (which the caller holds locked); write every
    file there. On success the files move into ``out`` and the manifest lists them; the
    files the previous manifest listed are removed first (all of them with
    ``replace_own``, as a new run does; else only the previous report's, as a re-rendered
    report does). ``adopt``: files of ours already in ``out`` to list too (the results.json
    a report was rendered from). On any failure the staging folder is removed and ``out``
    is unchanged; a full disk or a forbidden folder becomes an InputError naming ``out``."""
    stage = Path(tempfile.mkdtemp(prefix=STAGING, dir=out))
    try:
        try:
            yield stage
            _commit(stage, out, kind, replace_own=replace_own, force=force, flag=flag, adopt=adopt)
        except OSError as exc:
            raise _write_error(exc, out, flag) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _write_error(exc: OSError, out: Path, flag: str) -> Exception:
    if exc.errno not in WRITE_ERRNOS:
        return exc
    return InputError(flag, "", f"a folder rdusim can write into ({str(out)!r})",
                      f"{exc.strerror or exc} while writing it; nothing was written, the folder is as before")


def _commit(stage: Path, out: Path, kind: Kind, *, replace_own: bool, force: bool, flag: str,
            adopt: Iterable[str]) -> None:
    new = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*")
                 if p.is_file() and p.relative_to(stage).as_posix() != MANIFEST)
    old = read_manifest(out)
    listed = [str(f) for f in (old or {}).get("files", []) if _inside(out, str(f)) is not None]
    keep = [f for f in listed if not replace_own and f in OWN_FILES[kind] and f not in new]
    keep += [f for f in adopt if f not in keep and f not in new and (out / f).is_file()]
    clash = [f for f in new if (out / f).exists() and f not in listed]
    if clash and not force:
        raise InputError(flag, "", "no file of the user's where rdusim writes its own (--force overwrites it)",
                         f"{str(out / clash[0])!r}, not written by rdusim (nothing was written)")
    text = json.dumps({"written_by": f"rdusim {__version__}", "kind": kind.value,
                       "files": sorted(set(keep) | set(new))}, indent=1) + "\n"
    atomic_write_text(stage / MANIFEST, text)       # may fail (full disk): nothing moved yet
    with _signals_held():                           # renames only from here: no space needed
        for f in listed:
            if f not in keep and f not in new:
                p = _inside(out, f)
                if p is not None and p.is_file():
                    p.unlink()
        for f in new:
            (out / f).parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / f, out / f)
        os.replace(stage / MANIFEST, out / MANIFEST)
        for f in listed:                            # folders the previous files left empty
            parent = (out / f).parent
            while parent != out and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent


@contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the files are in place (the renames take microseconds)."""
    held = {signal.SIGINT, signal.SIGTERM}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _inside(out: Path, rel: str) -> Optional[Path]:
    p = (out / rel).resolve()
    root = out.resolve()
    return p if p != root and root in p.parents else None


def write_manifest(out: Path, kind: Kind, files: Iterable[str]) -> Path:
    """Mark ``out`` as rdusim's folder of ``kind`` listing ``files`` (a sweep's, at its start)."""
    data = read_manifest(out) or {}
    listed = sorted(set(str(f) for f in data.get("files", [])) | set(files))
    text = json.dumps({"written_by": f"rdusim {__version__}", "kind": kind.value, "files": listed}, indent=1) + "\n"
    return atomic_write_text(out / MANIFEST, text)


def record(out: Path, files: Iterable[Path], *, replace: Iterable[str] = ()) -> Path:
    """Add ``files`` to the manifest of ``out`` (dropping entries matching ``replace``
    globs first). Report writers call it; inside a staging folder the manifest it writes
    is replaced by the one :func:`staged` makes."""
    from fnmatch import fnmatch

    data = read_manifest(out) or {"files": []}
    patterns = list(replace)
    kept = [f for f in data["files"] if not any(fnmatch(str(f), pat) for pat in patterns)]
    root = out.resolve()
    new = [Path(f).resolve().relative_to(root).as_posix() for f in files]
    listed = sorted(set(kept) | set(new))
    body = {"written_by": f"rdusim {__version__}", **({"kind": data["kind"]} if "kind" in data else {}),
            "files": listed}
    return atomic_write_text(out / MANIFEST, json.dumps(body, indent=1) + "\n")
