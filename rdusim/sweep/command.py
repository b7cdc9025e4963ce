"""``rdusim sweep``: from flags (or a sweep file) to a finished, stored sweep."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from rdusim import outdir
from rdusim.config.workload import workload_file
from rdusim.config.yamlio import load_yaml, parse_set
from rdusim.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, InputError
from rdusim.paths import default_out
from rdusim.sweep.executor import ExecutorSpec, WorkerLost
from rdusim.sweep.grid import expand
from rdusim.sweep.runner import run_sweep
from rdusim.sweep.spec import SweepSpec, is_sweep_file, load_sweep_file, sweep_from_flags
from rdusim.progress import Progress
from rdusim.cache import cache_at
from rdusim.sweep.store import SweepStore

_MAX_LISTED_FAILURES = 10


def spec_from_args(args) -> SweepSpec:
    sets = tuple(parse_set(s) for s in args.set)
    path = str(workload_file(args.workload))     # a path, or a shipped sweep or workload by name
    if is_sweep_file(load_yaml(path)):
        for flag, given in (("--grid", args.grid), ("--zip", args.zip), ("--metrics", args.metrics)):
            if given:
                raise InputError(flag, "", f"no {flag} with a sweep file (the file's sweep: section defines it)",
                                 f"{flag} given")
        return load_sweep_file(path, seed=args.seed, extra_fixed=sets)
    return sweep_from_flags(path, args.grid, zip_=args.zip, metrics=args.metrics,
                            seed=args.seed, sets=list(args.set))


def main_sweep(args) -> int:
    spec = spec_from_args(args)
    if getattr(args, "cache_dir", None):
        cache_at(args.cache_dir)            # a bad --cache-dir fails before anything runs
    executor = ExecutorSpec.from_flags(args.executor, args.workers, args.scheduler,
                                       getattr(args, "connect_timeout", None))
    out = Path(args.out) if args.out else default_out(spec.name)
    outdir.check_target(out, outdir.Kind.SWEEP, force=getattr(args, "force", False))
    total = len(expand(spec))
    print(f"sweep {spec.name}: {total} points over {', '.join(spec.keys)} ({spec.mode.value}), "
          f"executor {executor.kind.value}")
    try:
        with outdir.removed_if_empty(out):
            outcome = run_sweep(spec, out, executor, resume=args.resume, progress=Progress,
                                cache_dir=getattr(args, "cache_dir", None))
    except WorkerLost as exc:
        print(f"rdusim: error: {exc}. Finished points are stored in {shlex.quote(str(out))}; "
              f"re-run with --resume to finish.", file=sys.stderr)
        return 1
    stop = EXIT_TERMINATED if outcome.terminated else EXIT_INTERRUPTED
    if outcome.csv is None:                 # stopped before any point was stored: nothing kept
        print(f"{'terminated' if outcome.terminated else 'interrupted'} before any point finished; "
              "nothing was stored", file=sys.stderr)
        return stop
    if outcome.code_changed and outcome.ran and outcome.skipped:
        print("rdusim: warning: the rdusim sources changed since the stored points ran; rows from "
              "before and after --resume may not be comparable", file=sys.stderr)
    counts = ", ".join(f"{n} {s}" for s, n in outcome.counts.items())
    rate = outcome.ran / outcome.wall_s if outcome.wall_s > 0 else 0.0
    print(f"ran {outcome.ran} points in {outcome.wall_s:.2f} s ({rate:.3g} points/s); "
          f"{outcome.skipped} already stored"
          + (f" ({outcome.retried} stored as errors ran again)" if outcome.retried else "") + f"; table: {counts}")
    _list_failures(out)
    _warn_unmatched_metrics(out, spec.metrics)
    print(f"table: {out / 'sweep.sqlite'}\ncsv:   {outcome.csv}\nplots: rdusim report {shlex.quote(str(out))}")
    if outcome.interrupted:
        print(f"{'terminated' if outcome.terminated else 'interrupted'}: re-run with --resume to finish "
              f"({shlex.quote(str(out))})", file=sys.stderr)
        return stop
    if outcome.counts.get("error", 0) and outcome.counts.get("error", 0) == sum(outcome.counts.values()):
        print(f"rdusim: error: every point of the sweep failed (listed above); fix the cause and re-run "
              f"with --resume, which runs the failed points again", file=sys.stderr)
        return 1
    return 0


def _list_failures(out: Path) -> None:
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
