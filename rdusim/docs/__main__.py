"""``python -m rdusim.docs [--check]``: regenerate (or check) every marked figure of the docs."""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from rdusim.docs.figures import FIGURES
from rdusim.docs.markers import MarkerError, marked, replace, same_within_rounding
from rdusim.docs.runs import CommandFailed, Runs
from rdusim.config.workload import REPO_ROOT

SNAPSHOT = Path("docs") / "figures.json"


def doc_files(root: Path) -> list[Path]:
    """README.md and every docs/*.md."""
    return [root / "README.md"] + sorted((root / "docs").glob("*.md"))


def used_names(root: Path) -> list[str]:
    names: dict[str, None] = {}
    for f in doc_files(root):
        names.update(dict.fromkeys(m.name for m in marked(f.read_text(), str(f))))
    return list(names)


def generate(names: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Each figure's text, made by running its command (each command once), and the figures
    that failed with why: a command that errs or whose output or metrics changed shape fails
    its figures only."""
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise MarkerError(f"no figure named {', '.join(unknown)} (rdusim/docs/figures.py)")
    out, failed = {}, {}
    with Runs() as runs:
        for name in names:
            try:
                out[name] = FIGURES[name](runs).rstrip("\n")
            except (KeyError, IndexError, CommandFailed) as exc:
                failed[name] = f"{type(exc).__name__}: {exc}"
    return out, failed


def current(root: Path) -> dict[str, str]:
    """What the docs hold now, per figure."""
    return {m.name: m.text for f in doc_files(root) for m in marked(f.read_text(), str(f))}


def read_snapshot(root: Path) -> dict[str, str]:
    path = root / SNAPSHOT
    return json.loads(path.read_text())["figures"] if path.is_file() else {}


def snapshot_problems(root: Path) -> list[str]:
    """Marked figures whose text differs from what the last regeneration wrote (a hand edit),
    or that it never wrote: what the fast test checks, without simulating."""
    snap = read_snapshot(root)
    problems = []
    for f in doc_files(root):
        for m in marked(f.read_text(), str(f)):
            if m.name not in snap:
                problems.append(f"{f.name}: figure {m.name} was never generated (run python -m rdusim.docs)")
            elif m.text != snap[m.name]:
                diff = "\n".join(difflib.unified_diff(snap[m.name].splitlines(), m.text.splitlines(),
                                                      "generated", f.name, lineterm="", n=0))
                problems.append(f"{f.name}: figure {m.name} differs from its generated text "
                                f"(edited by hand? run python -m rdusim.docs):\n{diff}")
    return problems


def drift(root: Path, figures: dict[str, str]) -> list[str]:
    """Marked figures whose text is not the regenerated one within rounding."""
    out = []
    for f in doc_files(root):
        for m in marked(f.read_text(), str(f)):
            if not same_within_rounding(m.text, figures[m.name]):
                diff = "\n".join(difflib.unified_diff(m.text.splitlines(), figures[m.name].splitlines(),
                                                      f.name, "regenerated", lineterm="", n=0))
                out.append(f"{f.name}: figure {m.name} is stale:\n{diff}")
    return out


def write(root: Path, figures: dict[str, str]) -> list[Path]:
    changed = []
    for f in doc_files(root):
        old = f.read_text()
        new = replace(old, figures, str(f))
        if new != old:
            f.write_text(new)
            changed.append(f)
    snap = root / SNAPSHOT
    text = json.dumps({"comment": "written by python -m rdusim.docs: the marked figures of README.md and "
                       "docs/*.md as last generated (tests/test_readme_figures.py)",
                       "figures": dict(sorted(figures.items()))}, indent=1, ensure_ascii=False) + "\n"
    if not snap.is_file() or snap.read_text() != text:
        snap.write_text(text)
        changed.append(snap)
    return changed


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rdusim.docs", description=__doc__)
    ap.add_argument("--check", action="store_true",
                    help="regenerate and compare within rounding; write nothing; exit 1 on a difference")
    ap.add_argument("--root", default=str(REPO_ROOT), help="the checkout (default: this one)")
    args = ap.parse_args(argv)
    root = Path(args.root)
    try:
        figures, failed = generate(used_names(root))
    except MarkerError as exc:
        print(f"rdusim.docs: error: {exc}", file=sys.stderr)
        return 2
    for name, why in failed.items():
        print(f"rdusim.docs: figure {name} FAILED, its text left as it was: {why}", file=sys.stderr)
    if args.check:
        problems = drift(root, {**current(root), **figures})
        for p in problems:
            print(p)
        print(f"{len(figures)} figures, {len(problems)} stale, {len(failed)} failed")
        return 1 if problems or failed else 0
    changed = write(root, {**current(root), **figures})
    print(f"{len(figures)} figures regenerated, {len(failed)} failed; rewrote: "
          f"{', '.join(str(p.relative_to(root)) for p in changed) or 'nothing'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
