"""``rdusim report``: re-render a run's report, or draw a sweep's plots, into a folder
rdusim owns (rdusim.outdir: checked, locked, written all at once)."""

from __future__ import annotations

from pathlib import Path

from rdusim import outdir
from rdusim.errors import InputError


def _same_dir(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def main_report(args) -> int:
    from rdusim.results import load_result
    from rdusim.sweep.store import has_store

    given = Path(args.results)
    if given.is_dir():
        run_json, sweep = given / "results.json", has_store(given)
        if run_json.is_file() and sweep:
            raise InputError(str(given), "", "a run folder or a sweep folder", "both results.json and "
                             "sweep.sqlite in it (render one: rdusim report DIR/results.json --out OTHER)")
        if sweep:                               # a sweep folder (sweep.sqlite): plots from the stored table
            from rdusim.sweep.plots import render_sweep
            out = Path(args.out) if args.out else given
            kind = outdir.Kind.SWEEP if _same_dir(out, given) else outdir.Kind.REPORT
            outdir.check_target(out, kind, force=args.force)
            with outdir.locked(out, "report"), \
                    outdir.staged(out, kind, replace_own=False, force=args.force) as stage:
                paths = [out / p.relative_to(stage) for p in render_sweep(given, stage)]
            print("\n".join(f"{'report' if p.suffix == '.html' else 'plot'}: {p}" for p in paths))
            return 0
        if not run_json.is_file():
            raise InputError(str(given), "", "a results.json, a run folder holding one, or a sweep folder "
                             "holding sweep.sqlite", "neither results.json nor sweep.sqlite in it")
        given = run_json                        # a run folder: its results
    from rdusim.report.render import render_report

    result = load_result(given)
    out = Path(args.out) if args.out else given.parent
    kind = outdir.Kind.RUN if _same_dir(out, given.parent) else outdir.Kind.REPORT
    own = [given] if kind == outdir.Kind.RUN else []
    outdir.check_target(out, kind, force=args.force, ignore=own)
    with outdir.locked(out, "report"), \
            outdir.staged(out, kind, replace_own=False, force=args.force, adopt=[p.name for p in own]) as stage:
        index = out / render_report(result, stage).relative_to(stage)
    print(f"report: {index}")
    return 0
