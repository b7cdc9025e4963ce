"""Issue 11, items 2 and 5: every input error is one line and exit 2, never a traceback;
Ctrl-C is exit 130 with one line; the CLI says what happened (help, OOM reasons, quoted hints)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rdusim.cli import build_parser, main
from rdusim.config.workload import REPO_ROOT

COE = "workloads/coe150.yaml"


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("rdusim: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)


@pytest.mark.parametrize("args,names", [
    # the crashes
    ([COE, "--set", "platforms.sn40l.tp=3"], ["platforms.sn40l.tp", "num_attention_heads"]),
    ([COE, "--set", "arch.sn40l.socket.pmu.capacity_bytes=64"], ["socket.pmu.capacity_bytes"]),
    ([COE, "--set", "batch_sizes=[1,1e30]"], ["batch_sizes[1]", "65536"]),
    ([COE, "--set", "experts.count=1e30"], ["experts.count", "100000"]),
    ([COE, "--set", "batches=1e30"], ["batches", "1000000"]),
    # impossible magnitudes and inconsistencies, named with their limit
    (["workloads/llama2_7b_chat.yaml", "--set", "prompt_tokens=4090"], ["prompt_tokens", "context of 4096"]),
    (["workloads/llama2_7b_chat.yaml", "--set", "batch_size=1e30"], ["batch_size", "65536"]),
    (["workloads/monarch_fft.yaml", "--set", "benchmarks.0.n=1000"], ["n", "integer order-2 root"]),
    (["workloads/fusion_suite.yaml", "--set", "benchmarks.0.seq=8192"], ["benchmarks[0].seq", "4096"]),
    ([COE, "--set", "routing.trace=tests/data/coe_trace.yaml"], ["routing.trace", "distribution"]),
])
def test_bad_input_is_one_line_exit_2(capsys, args, names):
    start = time.perf_counter()
    code, out, err = run_cli(capsys, "run", *args, "--out", "/nonexistent-never-written")
    line = one_error_line(err)
    assert code == 2
    for name in names:
        assert name in line
    assert time.perf_counter() - start < 20          # found before the study runs (pmu: at the first kernel)


def test_negative_seed_is_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rdusim.cli", "run", COE, "--seed", "-1", "--out", str(tmp_path)],
                          cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = one_error_line(proc.stderr)
    assert "--seed" in line and "non-negative" in line
    assert not (tmp_path / "results.json").exists()


@pytest.mark.parametrize("argv", [["run"], ["bogus"], ["run", COE, "--seed", "x"], ["sweep", COE, "--workers", "two"]])
def test_usage_errors_are_one_line_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "--help" in one_error_line(capsys.readouterr().err)


def test_seed_beyond_the_limit_is_named(capsys):
    from rdusim.config.workload import load_workload
    from rdusim.errors import InputError

    with pytest.raises(InputError) as e:
        load_workload(COE, seed=2**64)
    assert e.value.file == "--seed" and "0..9223372036854775807" in str(e.value)


def test_trace_ids_out_of_range_are_an_error(tmp_path, capsys):
    trace = tmp_path / "ids.yaml"
    trace.write_text("[0, 3, 150]\n")
    code, _, err = run_cli(capsys, "run", COE, "--set", "routing.distribution=trace",
                           "--set", f"routing.trace={trace}", "--out", str(tmp_path / "o"))
    line = one_error_line(err)
    assert code == 2 and "[2]" in line and "below experts.count (150)" in line and line.endswith("found 150")


def test_duplicate_yaml_key_is_an_error(tmp_path, capsys):
    text = (REPO_ROOT / "workloads" / "llama2_7b_chat.yaml").read_text()
    wl = tmp_path / "dup.yaml"
    wl.write_text(text.replace("batch_size: 1\n", "batch_size: 1\nbatch_size: 8\n"))
    code, _, err = run_cli(capsys, "run", str(wl), "--out", str(tmp_path / "o"))
    line = one_error_line(err)
    assert code == 2 and "batch_size" in line and "each key once" in line and "again at line" in line


def test_duplicate_key_in_an_arch_file_is_an_error(tmp_path, capsys):
    arch = tmp_path / "a.yaml"
    arch.write_text((REPO_ROOT / "arch" / "sn40l.yaml").read_text() + "name: again\n")
    code, _, err = run_cli(capsys, "arch", "show", str(arch))
    assert code == 2 and "name" in one_error_line(err)


def test_ctrl_c_is_exit_130_with_one_line(tmp_path):
    # many replications: the run lasts far longer than the 2 s before the interrupt on any machine
    proc = subprocess.Popen([sys.executable, "-m", "rdusim.cli", "run", COE, "--out", str(tmp_path),
                             "--set", "replications=5000"],
                            # a shell that started the suite in the background ignores SIGINT, and
                            # children inherit that: give this one the terminal's default back
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)                       # inside the simulation
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip() == "rdusim: interrupted"
    assert not (tmp_path / "results.json").exists()     # nothing half-written


def test_every_flag_has_help_and_the_top_help_says_what_rdusim_is():
    parser = build_parser()
    assert "simulator" in parser.description and "rdusim/" not in parser.description
    assert "exit status" in parser.epilog
    seen = 0

    def walk(p):
        nonlocal seen
        for action in p._actions:
            if action.dest == "help":
                continue
            if action.choices and isinstance(action.choices, dict):      # subcommands
                for sub in action.choices.values():
                    walk(sub)
                continue
            assert action.help, f"{p.prog}: {action.option_strings or action.dest} has no help text"
            seen += 1
    walk(parser)
    assert seen >= 30


def test_oom_reasons_are_printed(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "run", "tests/data/coe_small.yaml", "--out", str(tmp_path))
    assert code == 0
    block = out.split("Out of memory (reason: rows):", 1)[1]
    assert "exceed" in block and "coe.dgx_h100." in block and "experts400" in block


def test_report_of_a_run_folder_finds_its_results(tmp_path, capsys):
    assert main(["run", "tests/data/coe_small.yaml", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    code, out, _ = run_cli(capsys, "report", str(tmp_path))
    assert code == 0 and (tmp_path / "index.html").is_file()
    html = (tmp_path / "index.html").read_text()
    assert "Out of memory" in html and "exceed" in html                   # reasons in the report too
    code, _, err = run_cli(capsys, "report", str(tmp_path / "tables"))     # neither results nor a sweep
    assert code == 2 and "results.json" in one_error_line(err)


def test_hints_quote_paths(tmp_path, capsys):
    sys.path.insert(0, str(REPO_ROOT / "tests" / "data"))
    import sweep_fake

    out_dir = tmp_path / "a dir with spaces"
    import rdusim.studies
    orig = rdusim.studies.run_study
    sweep_fake.install()
    try:
        code, out, err = run_cli(capsys, "sweep", "tests/data/sweep_model.yaml", "--grid", "batch_size=1,2",
                                 "--out", str(out_dir), "--workers", "1", "--metrics", "model.*", "nosuch.*")
    finally:
        rdusim.studies.run_study = orig
    assert code == 0
    assert f"plots: rdusim report '{out_dir}'" in out
    assert "--metrics 'nosuch.*' matched no metric" in err                  # a glob matching nothing warns
    assert "'model.*'" not in err
    code, out, _ = run_cli(capsys, "report", str(out_dir))              # the sweep's page
    assert code == 0 and f"report: {out_dir / 'index.html'}" in out
    html = (out_dir / "index.html").read_text()
    assert "Points" in html and "<img" in html and 'href="tables/sweep_points.csv"' in html


def test_oom_reasons_are_found_for_every_study_shape():
    from rdusim.report.oom import NO_REASON, oom_lines, reason_of

    assert reason_of("coe.sn40l.bs1.tok20.experts1000", {"coe.sn40l.bs1.tok20.experts1000": "r"}) == "r"
    assert reason_of("model.sn40l", {"sn40l": "m"}) == "m"
    assert reason_of("fusion.b.dgx_h100.unfused", {"b.dgx_h100": "f"}) == "f"
    assert reason_of("fusion.b.unfused", {"b.sn40l": "f"}) == "f"          # the first RDU's copy
    assert reason_of("model.x", {}) == NO_REASON
    lines = oom_lines({"model.a.oom": 1, "model.b.oom": 1, "model.c.oom": 0}, {"oom_reasons": {"a": "too big"}})
    assert lines == ["too big: model.a", f"{NO_REASON}: model.b"]
