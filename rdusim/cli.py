"""rdusim: a discrete-event simulator of the SambaNova SN40L reconfigurable dataflow unit
set against DGX H100 and DGX A100 GPU systems on LLM workloads: fused versus unfused
execution, kernel launch, Composition-of-Experts serving, model runs, sweeps, and a
comparison with published numbers (validate)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

# The command line's numpy work is small arrays (no large matrix products), so OpenBLAS's
# worker threads only cost: starting them is ~0.1 s of CPU at numpy's import, taken from the
# other core (or from a sweep's second worker). A user's own setting is kept. Set here, for
# the command line only: rdusim imported as a library leaves the process's BLAS alone.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from rdusim import __version__  # noqa: E402
from rdusim.cli_show import cmd_arch_show, cmd_graph, cmd_stack_show  # noqa: E402
from rdusim.errors import ending, sigterm_raises  # noqa: E402

EXIT_CODES = """exit status:
  0    done
  1    validate: a reference missed its tolerance; sweep: every point failed, or a worker process
       died (--resume runs the missing and failed points)
  2    bad input (one line names the file, the key, what was expected and what was found), or an
       output folder rdusim may not or cannot write into (not its own, locked, full, read-only)
  70   internal error: a bug in rdusim; one line says where the full traceback was written
  130  interrupted (Ctrl-C); finished sweep points are kept, a run's half-written files removed
  141  stdout was closed before everything was printed (results are written first, and kept)
  143  terminated (SIGTERM); as for Ctrl-C"""


CACHE_HELP = ("keep simulated kernels, steps and inference timings in DIR across runs (keyed by a hash of "
              "their inputs, the rdusim version and its sources; results are identical with or without it)")


def _run_cache(directory: str | None):
    from rdusim.cache import cache_at

    return cache_at(directory)


def cmd_run(args) -> int:
    from rdusim import outdir
    from rdusim.config.workload import load_workload
    from rdusim.config.yamlio import parse_set
    from rdusim.parallel import using_jobs
    from rdusim.paths import default_out
    from rdusim.report.oom import oom_lines
    from rdusim.studies import run_study, summarize

    loaded = load_workload(args.workload, [parse_set(s) for s in args.set], args.seed)
    out = Path(args.out) if args.out else default_out(loaded.name)
    run = outdir.Kind.RUN
    outdir.check_target(out, run, force=args.force)      # before simulating, not after
    cache = _run_cache(args.cache_dir)
    with outdir.locked(out, "run"):                      # one writer at a time
        outdir.check_target(out, run, force=args.force)
        with using_jobs(_jobs_of(args)):
            result = run_study(loaded, trace=args.trace, cache=cache)
        # everything is written before anything is printed: a closed stdout loses nothing;
        # all files land at once, or none (a full disk, Ctrl-C: the folder is as it was)
        with outdir.staged(out, run, force=args.force) as stage:
            written = [out / result.write(stage).relative_to(stage)]
            if args.trace:
                from rdusim.report.trace import write_trace
                written.append(out / write_trace(result.trace, stage).relative_to(stage))
            report = None
            if args.report:
                from rdusim.report.render import render_report
                report = out / render_report(result, stage).relative_to(stage)
    _warn_cache(cache, args.cache_dir)
    lines = [f"workload: {loaded.file}"]
    lines += [f"arch {name}: {file}" for name, file in loaded.arch_files.items()]
    lines += ["", summarize(result)]
    ooms = oom_lines(result.metrics, result.extra)
    if ooms:
        lines += ["", "Out of memory (reason: rows):"] + [f"  {line}" for line in ooms]
    lines += ["", f"results: {written[0]}"]
    if args.trace:
        lines.append(f"trace:   {written[1]}")
    if report is not None:
        lines.append(f"report:  {report}")
    print("\n".join(lines))
    return 0


def _warn_cache(cache, directory: str | None) -> None:
    if cache is not None and cache.write_errors:
        _error(f"rdusim: warning: --cache-dir {quote(directory)}: {sum(cache.write_errors.values())} entries "
               f"could not be saved ({cache.last_write_error}); the results do not depend on it")


def cmd_report(args) -> int:
    from rdusim.cli_report import main_report

    return main_report(args)


def cmd_sweep(args) -> int:
    from rdusim.sweep.command import main_sweep

    return main_sweep(args)


def cmd_plan(args) -> int:
    from rdusim.fleet.command import main_plan

    return main_plan(args, _jobs_of(args))


def cmd_validate(args) -> int:
    from rdusim.config.workload import REPO_ROOT
    from rdusim.parallel import using_jobs
    from rdusim.paths import find_user_file
    from rdusim.validate import main_validate

    _run_cache(args.cache_dir)                 # a bad --cache-dir fails before anything runs
    refs = [str(find_user_file(f, "references", data_root=REPO_ROOT)) for f in args.refs]
    with using_jobs(_jobs_of(args)):
        return main_validate(refs, cache_dir=args.cache_dir)


JOBS_HELP = ("processes for the run's independent parts (the CoE study's platforms, the fusion suite's "
             "benchmarks, validate's studies); results are identical for any N (default: the usable CPUs)")


def _int_at_least(low: int, expected: str):
    """An argparse type: an integer of at least ``low`` (described as ``expected``)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, found {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {expected}, found {value}")
        return value
    return parse


_jobs = _int_at_least(1, "a positive integer")              # --jobs
_seed = _int_at_least(0, "a non-negative integer")          # --seed (numpy seeds cannot be negative)


def _jobs_of(args) -> int:
    from rdusim.parallel import usable_cpus

    return args.jobs if args.jobs is not None else usable_cpus()


FORCE_HELP = ("write into a non-empty folder rdusim did not write (no manifest.json), or over a file of "
              "yours where rdusim writes one of its own; rdusim still removes no file it did not write")

SET_HELP = ("override a workload field by dotted key (batch_size=8, platforms.sn40l.tp=4) or an arch "
            "field as arch.<platform>.<key> (arch.sn40l.socket.ddr.bandwidth_bytes_per_s=1e11); "
            "VALUE is YAML; repeatable")


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line too (exit 2), pointing to the help."""

    def error(self, message: str):
        self.exit(2, f"rdusim: error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="rdusim", description=__doc__, epilog=EXIT_CODES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"rdusim {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="run a workload and write results.json",
                       description="Run a workload (a YAML file, or the name of a shipped one such as coe150) "
                       "and write results.json, then print its summary.", epilog=EXIT_CODES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("workload", help="a workload YAML, or a shipped workload name (coe150, fusion_suite, ...)")
    r.add_argument("--out", metavar="DIR", help="output folder (default reports/<workload name>): new, empty, or "
                   "an earlier run's; the run replaces the files that run wrote there (listed in its "
                   "manifest.json) and no other")
    r.add_argument("--force", action="store_true", help=FORCE_HELP)
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    r.add_argument("--seed", type=_seed, help="random seed (a non-negative integer; default the workload's)")
    r.add_argument("--report", action="store_true", help="also render index.html, report.md, figures and tables")
    r.add_argument("--trace", action="store_true", help="also write trace.json (Chrome/Perfetto timeline)")
    r.add_argument("--cache-dir", metavar="DIR", help=CACHE_HELP)
    r.add_argument("--jobs", type=_jobs, metavar="N", help=JOBS_HELP)
    r.set_defaults(func=cmd_run)

    v = sub.add_parser("validate", help="compare the simulator with published numbers",
                       description="Run every reference (default: all of references/) and compare with the "
                       "published number. Exit 0 if all are within tolerance, 1 if any misses, 2 on bad input.")
    v.add_argument("--refs", nargs="+", action="extend", default=[], metavar="FILE",
                   help="reference YAML files to check (default: every file in references/)")
    v.add_argument("--cache-dir", metavar="DIR", help=CACHE_HELP)
    v.add_argument("--jobs", type=_jobs, metavar="N", help=JOBS_HELP)
    v.set_defaults(func=cmd_validate)

    sw = sub.add_parser("sweep", help="run a workload over a grid of overrides (or a sweep file)",
                        description="Run a workload over a grid of --set values; every finished point is "
                        "committed to DIR/sweep.sqlite at once.", epilog=EXIT_CODES,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    sw.add_argument("workload", help="a workload YAML, or a sweep file with a top-level 'sweep:' key")
    sw.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                    help="an axis of the grid: a dotted key and its values; repeatable")
    sw.add_argument("--zip", action="store_true", help="zip the grids (equal lengths) instead of their product")
    sw.add_argument("--metrics", nargs="+", action="extend", default=[], metavar="GLOB",
                    help="metric keys to store (fnmatch globs, !GLOB excludes; default all)")
    sw.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="fixed for every point: " + SET_HELP)
    sw.add_argument("--out", metavar="DIR", help="output folder (default reports/<sweep name>): new, empty, or "
                    "this sweep's (with --resume)")
    sw.add_argument("--force", action="store_true", help=FORCE_HELP)
    sw.add_argument("--executor", choices=["local", "dask"], help="local process pool (default) or Dask")
    sw.add_argument("--workers", type=int, help="worker processes (default: one per CPU)")
    sw.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler, e.g. tcp://host:8786")
    sw.add_argument("--connect-timeout", type=float, metavar="SECONDS",
                    help="give up on a --scheduler not reached within this time (default 5)")
    sw.add_argument("--resume", action="store_true",
                    help="run only the points missing from --out or stored there as errors (also starts a new "
                    "sweep if there is none)")
    sw.add_argument("--seed", type=_seed, help="random seed of the first point (a non-negative integer)")
    sw.add_argument("--cache-dir", metavar="DIR", help=CACHE_HELP + "; shared by the workers")
    sw.set_defaults(func=cmd_sweep)

    pl = sub.add_parser("plan", help="the smallest fleet per platform meeting a latency SLO (a plan file)")
    pl.add_argument("file", help="a plan file (kind: plan), e.g. workloads/plan_chat.yaml")
    pl.add_argument("--out", help="output folder (default reports/<name>)")
    pl.add_argument("--seed", type=_seed, default=None, help="override the file's seed")
    pl.add_argument("--force", action="store_true", help=FORCE_HELP)
    pl.add_argument("--cache-dir", help=CACHE_HELP)
    pl.add_argument("--jobs", type=_jobs, metavar="N", help="local worker processes when --workers is not given "
                    "(default: the usable CPUs); the plan is identical for any N")
    pl.add_argument("--resume", action="store_true", help="go on from the search table in OUT/search (every "
                    "fleet already simulated is taken from it; points stored as errors run again)")
    pl.add_argument("--executor", choices=["local", "dask"], help="local process pool (default) or Dask")
    pl.add_argument("--workers", type=int, help="worker processes (default: --jobs)")
    pl.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler, e.g. tcp://host:8786")
    pl.add_argument("--connect-timeout", type=float, metavar="SECONDS",
                    help="give up on a --scheduler not reached within this time (default 5)")
    pl.set_defaults(func=cmd_plan)
    rep = sub.add_parser("report", help="render a report from results.json (or a run / sweep folder)",
                         description="Re-render a report without re-simulating: from a results.json, a run "
                         "folder holding one, or a sweep folder (plots from sweep.sqlite).")
    rep.add_argument("results", help="results.json, a run folder, or a sweep folder")
    rep.add_argument("--out", metavar="DIR", help="where to write the report (default: beside the results); "
                     "new, empty, or an earlier report's")
    rep.add_argument("--force", action="store_true", help=FORCE_HELP)
    rep.set_defaults(func=cmd_report)

    g = sub.add_parser("graph", help="operator graph of a model (or a graph YAML): FLOPs, bytes, parameters")
    g.add_argument("model", help="a name in models/, a model YAML, or a graph YAML with ops")
    g.add_argument("--phase", choices=["prefill", "decode", "train"], help="required for models")
    g.add_argument("--batch", type=int, default=1, help="sequences per step (default 1)")
    g.add_argument("--seq", type=int, default=2048, help="sequence length in tokens (default 2048)")
    g.add_argument("--tp", type=int, default=1, help="tensor-parallel degree: the graph of one rank (default 1)")
    g.add_argument("--json", action="store_true", help="print the summary as JSON")
    g.set_defaults(func=cmd_graph)

    a = sub.add_parser("arch", help="machine descriptions")
    asub = a.add_subparsers(dest="arch_command", required=True, metavar="SUBCOMMAND")
    show = asub.add_parser("show", help="print a spec with sources and derived totals")
    show.add_argument("file", help="an arch YAML (a path, or a shipped one such as arch/sn40l.yaml or sn40l)")
    show.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="override a field of the spec by dotted key; repeatable")
    show.add_argument("--json", action="store_true", help="print spec, derived totals and sources as JSON")
    show.set_defaults(func=cmd_arch_show)

    st = sub.add_parser("stack", help="serving stacks (the software driving a machine): host costs, launch mode")
    ssub = st.add_subparsers(dest="stack_command", required=True)
    sshow = ssub.add_parser("show", help="print a stack's costs with their sources")
    sshow.add_argument("name", help="a stack in stacks/ (nemo, tensorrt_llm, vllm, sambanova, sambanova_coe_2024) "
                       "or a YAML path")
    sshow.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a stack field")
    sshow.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sshow.set_defaults(func=cmd_stack_show)
    return p


def quote(path: object) -> str:
    """A path as the user can paste it into a shell."""
    return shlex.quote(str(path))


def _stdout_closed() -> int:
    """stdout went away (``| head``, ``| true``): stop printing; what was written is kept."""
    try:    # further writes (and the interpreter's final flush) go nowhere instead of failing
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141      # 128 + SIGPIPE: what a shell reports for a writer whose reader left


def main(argv: list[str] | None = None) -> int:
    command = "rdusim"
    with sigterm_raises():
        try:
            args = build_parser().parse_args(argv)
            command = f"rdusim {args.command} {getattr(args, args.command + '_command', '') or ''}".strip()
            code = args.func(args)
            sys.stdout.flush()
            return code
        except BrokenPipeError:
            return _stdout_closed()
        except Exception as exc:       # noqa: BLE001 -- bad input: one line, 2; anything else: one line, 70
            line, code = ending(exc, command, argv)
        except KeyboardInterrupt as exc:               # Ctrl-C (130) or SIGTERM (143)
            line, code = ending(exc, command, argv)
    _error(line)
    return code


def _error(line: str) -> None:
    try:
        print(line, file=sys.stderr)
    except (OSError, ValueError):
        pass


def entry() -> None:
    """The ``rdusim`` command: :func:`main`'s status as the process's. An interrupted run
    leaves at once with 130 (143 on SIGTERM): CPython (3.11) kills itself with SIGINT at exit when the
    interrupt landed inside exec'd or eval'd code (a dataclass being created, a type hint
    being resolved), even though :func:`main` handled it."""
    code = main()
    if code in (130, 143):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
