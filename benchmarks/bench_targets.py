"""The interactive-speed targets (issue 14): each a whole process, median of N runs.

    python benchmarks/bench_targets.py [--repeat 3] [--only coe150 validate ...] [--jobs 1] [--record]

Prints, per target, the median wall seconds (and CPU seconds of the child processes:
user + sys, which a busy machine inflates much less than wall time), the target, and
whether it is met. The machine's load average is printed too: figures taken while other
work runs are not the machine's speed.

Targets: coe150 <= 1.0 s, fusion suite <= 1.5 s, fusion suite vs H100 <= 3 s, a model run
(llama2_7b_chat) <= 0.4 s, `rdusim validate` <= 2.5 s, 50 coe150 sweep points (10 DDR
bandwidths x 5 expert counts, as bench_sweep.py) <= 3 s on two workers.

Bytecode: a default Python caches each module's compiled bytecode (``__pycache__``) on
the first run and every later run loads it. Some environments turn that off
(``PYTHONDONTWRITEBYTECODE=1``, as this project's sandbox does), so every run recompiles
rdusim's ~160 modules from source. By default the benchmark first byte-compiles the
package (``python -m compileall rdusim``: what a default Python's first run leaves
behind) and measures what a user's runs cost after that; ``--bytecode none`` deletes
rdusim's cached bytecode and runs with ``PYTHONDONTWRITEBYTECODE=1`` (every run compiles).
The mode is printed with the figures, and so is a machine reference (a fixed Python loop
timed before and after): the same code's figures here differ by 30-50% between quiet and
slow half hours, and the reference shows which one a run fell in.

Processes: ``rdusim run`` and ``validate`` put a run's independent parts (CoE platforms,
fusion benchmarks, validate's studies) on the usable CPUs by default (``--jobs``,
:mod:`rdusim.parallel`); ``--jobs 1`` here measures them in one process. The CPU column
is the work of every process of the run either way.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DDR = "arch.sn40l.socket.ddr.bandwidth_bytes_per_s=" + ",".join(
    f"{g}e9" for g in (50, 75, 100, 125, 150, 175, 200, 250, 300, 400))


def _rdusim(*args: str) -> list[str]:
    return [sys.executable, "-m", "rdusim.cli", *args]


TARGETS = {      # (goal s, command given the output folder and the --jobs flags of run / validate)
    "coe150": (1.0, lambda out, j: _rdusim("run", "workloads/coe150.yaml", "--out", out, *j)),
    "fusion_suite": (1.5, lambda out, j: _rdusim("run", "workloads/fusion_suite.yaml", "--out", out, *j)),
    "fusion_suite_vs_h100": (3.0, lambda out, j: _rdusim("run", "workloads/fusion_suite_vs_h100.yaml",
                                                         "--out", out, *j)),
    "model_run": (0.4, lambda out, j: _rdusim("run", "workloads/llama2_7b_chat.yaml", "--out", out, *j)),
    "validate": (2.5, lambda out, j: _rdusim("validate", *j)),
    "sweep50_2workers": (3.0, lambda out, j: _rdusim("sweep", "workloads/coe150.yaml", "--grid", DDR,
                                                      "--grid", "experts.count=25,50,100,150,200",
                                                      "--set", "sweep_experts=[]", "--metrics", "*.latency_s",
                                                      "--workers", "2", "--out", out)),
}


# A fixed CPU-bound Python workload timed in a fresh process beside the targets: this machine's
# speed drifts by 30-50% from one half hour to the next (the same code, the same CPU seconds
# more or less), so the targets' figures are read against it.
_REFERENCE = "s = 0\nfor i in range(3_000_000):\n    s += i * i % 7\n"


def reference_s(repeat: int = 3) -> float:
    """Median wall seconds of the reference workload (whole process)."""
    walls = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", _REFERENCE], check=True)
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls)


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def prepare_bytecode(mode: str) -> dict[str, str]:
    """Byte-compile the package (``compiled``) or remove its bytecode (``none``); the
    environment the measured processes run in."""
    env = dict(os.environ)
    package = ROOT / "rdusim"
    if mode == "compiled":
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True,
                       stdout=subprocess.DEVNULL)
    else:
        for pyc in package.rglob("__pycache__/*.pyc"):
            pyc.unlink()
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def measure(name: str, repeat: int, env: dict[str, str] | None = None,
            jobs: int | None = None) -> tuple[float, float, int]:
    _, cmd = TARGETS[name]
    flags = ("--jobs", str(jobs)) if jobs is not None else ()
    walls, cpus, rc = [], [], 0
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="bench_targets_") as tmp:
            out = str(Path(tmp) / "out")
            c0, t0 = _child_cpu(), time.perf_counter()
            rc = subprocess.run(cmd(out, flags), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL).returncode
            walls.append(time.perf_counter() - t0)
            cpus.append(_child_cpu() - c0)
    return statistics.median(walls), statistics.median(cpus), rc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", nargs="+", choices=sorted(TARGETS))
    ap.add_argument("--bytecode", choices=("compiled", "none"), default="compiled",
                    help="compiled: rdusim byte-compiled first, as a default Python leaves it after "
                         "its first run (default); none: every run compiles rdusim from source")
    ap.add_argument("--jobs", type=int, help="rdusim run / validate --jobs N (default: theirs, the usable "
                    "CPUs); 1 measures one process. The sweep target always has its 2 workers")
    ap.add_argument("--record", action="store_true", help="store the figures in benchmarks/speed.json "
                    "(the README's Speed section is generated from it)")
    args = ap.parse_args(argv)
    env = prepare_bytecode(args.bytecode)
    jobs = f"--jobs {args.jobs}" if args.jobs is not None else "default --jobs (the usable CPUs)"
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cpus; "
          f"median of {args.repeat} whole-process runs; rdusim bytecode: {args.bytecode}; {jobs}")
    ref_before = reference_s()
    print(f"machine reference (a fixed 3M-iteration Python loop, whole process): {ref_before:.2f} s")
    print(f"{'target':<22} {'wall s':>8} {'cpu s':>8} {'target s':>9}  met  exit")
    rows = {}
    for name in args.only or list(TARGETS):
        wall, cpu, rc = measure(name, args.repeat, env, args.jobs)
        goal = TARGETS[name][0]
        rows[name] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "goal_s": goal, "exit": rc}
        print(f"{name:<22} {wall:>8.2f} {cpu:>8.2f} {goal:>9.1f}  {'yes' if wall <= goal else 'NO ':<3}  {rc}",
              flush=True)
    ref_after = reference_s()
    print(f"machine reference after: {ref_after:.2f} s")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.record:
        from record import record

        record("targets" + ("" if args.jobs is None else f"_jobs{args.jobs}"),
               {"repeat": args.repeat, "bytecode": args.bytecode, "jobs": args.jobs,
                "reference_s": [round(ref_before, 3), round(ref_after, 3)], "targets": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
