"""``rdusim sweep``: from flags (or a sweep file) to a finished, stored sweep."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from rdusim.config.yamlio import load_yaml, parse_set
from rdusim.errors import InputError
from rdusim.outdir import check_writable
from rdusim.paths import default_out
from rdusim.sweep.executor import ExecutorSpec, WorkerLost
from rdusim.sweep.grid import expand
from rdusim.sweep.runner import run_sweep
from rdusim.sweep.spec import SweepSpec, is_sweep_file, load_sweep_file, sweep_from_flags

_MAX_LISTED_FAILURES = 10


def spec_from_args(args) -> SweepSpec:
    sets = tuple(parse_set(s) for s in args.set)
    if is_sweep_file(load_yaml(args.workload)):
        for flag, given in (("--grid", args.grid), ("--zip", args.zip), ("--metrics", args.metrics)):
            if given:
                raise InputError(flag, "", f"no {flag} with a sweep file (the file's sweep: section defines it)",
                                 f"{flag} given")
        return load_sweep_file(args.workload, seed=args.seed, extra_fixed=sets)
    return sweep_from_flags(args.workload, args.grid, zip_=args.zip, metrics=args.metrics,
                            seed=args.seed, sets=list(args.set))


def main_sweep(args) -> int:
    from rdusim.progress import Progress

    spec = spec_from_args(args)
    if getattr(args, "cache_dir", None):
        from rdusim.cache import cache_at
        cache_at(args.cache_dir)            # a bad --cache-dir fails before anything runs
    executor = ExecutorSpec.from_flags(args.executor, args.workers, args.scheduler)
    out = Path(args.out) if args.out else default_out(spec.name)
    check_writable(out)
    total = len(expand(spec))
    print(f"sweep {spec.name}: {total} points over {', '.join(spec.keys)} ({spec.mode.value}), "
          f"executor {executor.kind.value}")
    try:
        outcome = run_sweep(spec, out, executor, resume=args.resume, progress=Progress,
                            cache_dir=getattr(args, "cache_dir", None))
    except WorkerLost as exc:
        print(f"rdusim: error: {exc}. Finished points are stored in {shlex.quote(str(out))}; "
              f"re-run with --resume to finish.", file=sys.stderr)
        return 1
    if outcome.code_changed and outcome.ran and outcome.skipped:
        print("rdusim: warning: the rdusim sources changed since the stored points ran; rows from "
              "before and after --resume may not be comparable", file=sys.stderr)
    counts = ", ".join(f"{n} {s}" for s, n in outcome.counts.items())
    rate = outcome.ran / outcome.wall_s if outcome.wall_s > 0 else 0.0
    print(f"ran {outcome.ran} points in {outcome.wall_s:.2f} s ({rate:.3g} points/s); "
          f"{outcome.skipped} already stored; table: {counts}")
    _list_failures(out)
    _warn_unmatched_metrics(out, spec.metrics)
    print(f"table: {out / 'sweep.sqlite'}\ncsv:   {outcome.csv}\nplots: rdusim report {shlex.quote(str(out))}")
    if outcome.interrupted:
        print(f"interrupted: re-run with --resume to finish ({shlex.quote(str(out))})", file=sys.stderr)
        return 130
    return 0


def _list_failures(out: Path) -> None:
    from rdusim.sweep.store import SweepStore

    with SweepStore.open(out, lock=False) as store:
        failed = [r for r in store.rows() if r.error]
    for r in failed[:_MAX_LISTED_FAILURES]:
        params = ", ".join(f"{k}={v!r}" for k, v in r.params.items())
        print(f"  point {r.index} ({params}): {r.status.value}: {r.error}")
    if len(failed) > _MAX_LISTED_FAILURES:
        print(f"  ... and {len(failed) - _MAX_LISTED_FAILURES} more (see the error column of the csv)")


def _warn_unmatched_metrics(out: Path, globs: tuple[str, ...]) -> None:
    """A --metrics glob that matched no metric of any finished point is most likely a typo."""
    import fnmatch

    from rdusim.sweep.store import SweepStore

    include = [g for g in globs if not g.startswith("!")]
    if not include:
        return
    with SweepStore.open(out, lock=False) as store:
        ok = [r for r in store.rows() if not r.error]
    if not ok:
        return
    keys = {k for r in ok for k in r.metrics}
    for glob in include:
        if not any(fnmatch.fnmatchcase(k, glob) for k in keys):
            print(f"rdusim: warning: --metrics {glob!r} matched no metric of the workload; no values stored "
                  f"for it (see the metric keys in results.json of a single run, or docs/results.md)",
                  file=sys.stderr)
