"""``rdusim sweep``: from flags (or a sweep file) to a finished, stored sweep."""

from __future__ import annotations

import sys
from pathlib import Path

from rdusim.config.workload import REPO_ROOT
from rdusim.config.yamlio import load_yaml, parse_set
from rdusim.errors import InputError
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
    executor = ExecutorSpec.from_flags(args.executor, args.workers, args.scheduler)
    out = Path(args.out) if args.out else REPO_ROOT / "reports" / spec.name
    total = len(expand(spec))
    print(f"sweep {spec.name}: {total} points over {', '.join(spec.keys)} ({spec.mode.value}), "
          f"executor {executor.kind.value}")
    try:
        outcome = run_sweep(spec, out, executor, resume=args.resume, progress=Progress)
    except WorkerLost as exc:
        print(f"rdusim: error: {exc}. Finished points are stored in {out}; "
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
    print(f"table: {out / 'sweep.sqlite'}\ncsv:   {outcome.csv}\nplots: rdusim report {out}")
    if outcome.interrupted:
        print(f"interrupted: re-run with --resume to finish ({out})", file=sys.stderr)
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
