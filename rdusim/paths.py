"""Where the project's shipped data lives, and how a relative path in a user file is found.

Shipped data is the top-level ``arch/``, ``models/``, ``workloads/``, ``references/`` and
``stacks/`` folders. In a source checkout (and an editable install) they are read from the
checkout; a wheel (``pip install .``) carries copies under ``rdusim/_data`` (setup.py's
build step puts them there), so an installed rdusim finds them without the repository.

A file named on the command line (a workload, a sweep file, an arch, a stack, a reference
file) is looked up by :func:`find_user_file`, the one rule for every command: the path as
given, else the same relative path in the shipped data, else a shipped file by name.
A relative path written in a file (``arch: arch/sn40l.yaml`` in a workload) is looked up
beside that file first, then in the shipped data: a file next to the workload wins.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Optional

_PACKAGE = Path(__file__).resolve().parent
SHIPPED_DIRS = ("arch", "models", "workloads", "references", "stacks", "clusters", "data")


def _data_root() -> Path:
    installed = _PACKAGE / "_data"
    if (installed / "arch").is_dir():
        return installed
    return _PACKAGE.parent            # a source checkout: the folders sit beside the package


DATA_ROOT = _data_root()


def is_checkout(root: Path | None = None) -> bool:
    """True when the data comes from a source checkout (not from an installed wheel)."""
    root = DATA_ROOT if root is None else root
    return (root / "pyproject.toml").is_file()


def candidates(path: str | Path, relative_to: str | Path | None, data_root: Path | None = None) -> list[Path]:
    """The places a relative ``path`` is looked for, in order: beside the file
    ``relative_to`` (when given), then the shipped data."""
    p = Path(path)
    if p.is_absolute():
        return [p]
    out = []
    if relative_to is not None:
        out.append(Path(relative_to).parent / p)
    out.append((DATA_ROOT if data_root is None else data_root) / p)
    return out


def resolve(path: str | Path, relative_to: str | Path | None = None, data_root: Path | None = None) -> Path:
    """The first existing candidate; if none exists, the first one (errors then name it)."""
    found = candidates(path, relative_to, data_root)
    return next((c for c in found if c.exists()), found[0])


def find_user_file(arg: str, folder: str, suffixes: Iterable[str] = (".yaml", ".yml"),
                   data_root: Path | None = None) -> Path:
    """A file named on the command line: the path as given (from the current directory),
    else the same relative path in the shipped data, else a shipped ``folder/NAME[.yaml]``
    (so ``rdusim run coe150`` works from anywhere). Returns the path as given if nothing
    matches (the error then names it)."""
    p = Path(arg)
    if p.is_file() or p.is_absolute():
        return p
    root = DATA_ROOT if data_root is None else data_root
    tries = [root / p, root / folder / p] + [root / folder / (p.name + s) for s in suffixes if not p.suffix]
    return next((t for t in tries if t.is_file()), p)


_FOLDER_NAME = re.compile(r"\w[\w.+-]{0,99}")


def folder_name_problem(name: object) -> Optional[str]:
    """Why ``name`` (a workload's or sweep's ``name:``) cannot be the one folder its results
    go to under reports/, or None: it names exactly one folder, never a path."""
    if isinstance(name, str) and _FOLDER_NAME.fullmatch(name):
        return None
    return ("one folder name (results go to reports/<name>/): 1-100 letters, digits, '_', '-', '.' or '+', "
            "starting with a letter, digit or '_'; no '/', no '..'")


def default_out(name: str) -> Path:
    """Where a run or sweep writes by default: ``reports/<name>`` in the checkout, or, for
    an installed rdusim, under the current folder."""
    return (DATA_ROOT if is_checkout(DATA_ROOT) else Path.cwd()) / "reports" / name
