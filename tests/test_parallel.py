"""rdusim.parallel.fork_map: the same results as computing in order, whatever process did
which part; the first failing part's error; a worker that dies loses nothing; --jobs on
the CLI gives byte-identical results.json files and validate tables."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

import pytest

from rdusim.errors import InputError
from rdusim.parallel import _CAN_FORK, fork_map, jobs, using_jobs
from rdusim.progress import Progress

PARENT = os.getpid()
needs_fork = pytest.mark.skipif(not _CAN_FORK, reason="no safe fork here: everything runs in the caller")


def _square_and_pid(x: int) -> tuple[int, int]:
    time.sleep(0.005)              # long enough that a worker starts before the caller took every part
    return x * x, os.getpid()


@needs_fork
@pytest.mark.parametrize("n_jobs", [2, 3])
def test_results_come_back_in_order_from_several_processes(n_jobs):
    items = list(range(23))
    with using_jobs(n_jobs):
        got = fork_map(_square_and_pid, items)
    assert [v for v, _ in got] == [x * x for x in items]
    assert {pid for _, pid in got} - {PARENT}        # some parts were computed by a worker


def test_one_job_runs_everything_here():
    assert jobs() == 1                               # the library's default
    got = fork_map(_square_and_pid, range(5))
    assert {pid for _, pid in got} == {PARENT}


def test_parts_run_with_one_job_so_nothing_forks_twice():
    with using_jobs(2):
        inner = fork_map(lambda _: jobs(), range(6))
    assert inner == [1] * 6
    assert jobs() == 1


def _fails_at(bad: set[int]):
    def fn(x: int) -> int:
        if x in bad:
            raise InputError("f.yaml", f"items[{x}]", "a good item", x)
        return x
    return fn


def test_the_first_failing_part_in_order_raises_what_it_raised():
    with using_jobs(2):
        with pytest.raises(InputError) as exc:
            fork_map(_fails_at({7, 3, 11}), range(16))
    assert exc.value.key == "items[3]" and exc.value.found == 3


def test_a_worker_that_dies_loses_nothing():
    def fn(x: int) -> int:
        if os.getpid() != PARENT and x % 2:
            os._exit(9)                              # killed mid-part: reports nothing
        return x + 100
    with using_jobs(2):
        assert fork_map(fn, range(10)) == [x + 100 for x in range(10)]


def test_a_result_that_cannot_be_pickled_is_computed_here():
    def fn(x: int):
        return (x, os.getpid(), (lambda: x) if os.getpid() != PARENT else None)
    with using_jobs(2):
        got = fork_map(fn, range(8))
    assert [x for x, _, _ in got] == list(range(8))
    # the worker's whole report could not be pickled: the caller computed every part
    assert all(pid == PARENT and f is None for _, pid, f in got)


def test_reported_is_called_for_each_part_a_worker_computed():
    seen = []
    with using_jobs(2):
        got = fork_map(_square_and_pid, range(12), reported=lambda i, r: seen.append((i, r)))
    from_workers = [(i, r) for i, r in enumerate(got) if r[1] != PARENT]
    assert sorted(seen) == from_workers


def test_a_progress_bar_copied_into_a_worker_does_not_draw():
    out = io.StringIO()
    with Progress(4, "x", out, force=True, delay_s=0.0, refresh_s=0.0) as bar:
        bar._pid = -1                                # as a forked worker's copy sees it
        bar.advance()
        assert out.getvalue() == "" and bar.done == 1
        bar._pid = os.getpid()
        bar.advance()
        assert "2/4" in out.getvalue()


def _rdusim(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rdusim.cli", *args], capture_output=True, text=True)


@pytest.mark.parametrize("workload", ["tests/data/coe_small.yaml", "tests/data/fusion_small.yaml"])
def test_jobs_give_byte_identical_results(tmp_path, workload):
    texts = []
    for n in ("1", "2", "3"):
        out = tmp_path / n
        proc = _rdusim("run", workload, "--out", str(out), "--jobs", n)
        assert proc.returncode == 0, proc.stderr
        texts.append((out / "results.json").read_bytes())
    assert texts[0] == texts[1] == texts[2]


def test_validate_with_jobs_prints_the_same_table():
    refs = ["references/nemo_h100.yaml"]
    one, two = (_rdusim("validate", "--refs", *refs, "--jobs", n) for n in ("1", "2"))
    assert one.returncode == two.returncode and one.returncode in (0, 1)
    assert one.stdout == two.stdout and "16 references" in one.stdout


@pytest.mark.parametrize("bad", ["0", "-1", "two"])
def test_a_bad_jobs_count_is_exit_2(bad):
    proc = _rdusim("run", "tests/data/coe_small.yaml", "--jobs", bad)
    assert proc.returncode == 2
    assert "--jobs" in proc.stderr and "positive integer" in proc.stderr and "Traceback" not in proc.stderr
