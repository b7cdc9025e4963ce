"""A run owns its output folder: ``manifest.json`` lists every file the last run (and the
reports rendered from it) wrote there. A new run removes the files of the previous one
(as listed, plus rdusim's known artefact names in folders from before manifests), so no
file in the folder is older than its results.json; files rdusim did not write are kept.

``check_writable`` finds an unusable ``--out`` before anything is simulated.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Iterable

from rdusim.errors import InputError

MANIFEST = "manifest.json"
# what rdusim writes into a run folder (the fallback for folders without a manifest)
KNOWN = ("results.json", "trace.json", "index.html", "report.md", "figures/*.png", "tables/*.csv")


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
            fd, tmp = tempfile.mkstemp(dir=out, prefix=".rdusim-probe.")
            os.close(fd)
            os.unlink(tmp)
        else:
            os.rmdir(tempfile.mkdtemp(dir=probe, prefix=".rdusim-probe."))
    except OSError as exc:
        raise InputError(flag, "", "a folder you can write into",
                         f"{str(out)!r} ({probe}: {exc.strerror})") from None


def _read(out: Path) -> dict | None:
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), list) else None


def _inside(out: Path, rel: str) -> Path | None:
    p = (out / rel).resolve()
    root = out.resolve()
    return p if p != root and root in p.parents else None


def previous_files(out: Path) -> list[Path]:
    """Files the previous run in ``out`` wrote (existing ones only)."""
    data = _read(out)
    if data is not None:
        found = [_inside(out, str(r)) for r in data["files"]]
        return [p for p in found if p is not None and p.is_file()]
    return sorted(p for pattern in KNOWN for p in out.glob(pattern) if p.is_file())


def claim(out: Path) -> None:
    """Start a new run in ``out``: remove the previous run's files and its manifest."""
    out.mkdir(parents=True, exist_ok=True)
    for p in previous_files(out):
        p.unlink()
    for sub in ("figures", "tables"):
        d = out / sub
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()
    (out / MANIFEST).unlink(missing_ok=True)


def record(out: Path, files: Iterable[Path], *, replace: Iterable[str] = ()) -> Path:
    """Add ``files`` to the manifest of ``out`` (dropping entries matching ``replace``
    globs first, for a re-rendered report). Written atomically."""
    from fnmatch import fnmatch

    from rdusim import __version__
    from rdusim.results import atomic_write_text

    data = _read(out) or {"files": []}
    patterns = list(replace)
    kept = [f for f in data["files"] if not any(fnmatch(str(f), pat) for pat in patterns)]
    root = out.resolve()
    new = [str(Path(f).resolve().relative_to(root)) for f in files]
    listed = sorted(set(kept) | set(new))
    text = json.dumps({"written_by": f"rdusim {__version__}", "files": listed}, indent=1) + "\n"
    return atomic_write_text(out / MANIFEST, text)


REPORT_FILES = ("index.html", "report.md", "figures/*.png", "tables/*.csv")   # re-rendered by rdusim report
