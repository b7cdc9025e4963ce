"""Issue 21, input ranges: every number has a physical range (by the unit its key names),
smaller input checks (Azure clock, int4 groups, graph sizes, unit wording, file kinds, input
size), and OOM reasons that never contradict themselves."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from rdusim.cli import main
from rdusim.config.workload import REPO_ROOT
from rdusim.report.oom import NO_REASON

LLAMA_CHAT = str(REPO_ROOT / "workloads/llama2_7b_chat.yaml")
SERVE = str(REPO_ROOT / "workloads/serve_llama2_7b.yaml")
SERVE_COE = str(REPO_ROOT / "workloads/serve_coe150.yaml")
SPEC = str(REPO_ROOT / "workloads/llama3_70b_speculative.yaml")
SMALL = ["--set", "requests=20", "--set", "warmup_requests=0", "--set", "rates_per_s=[]",
         "--set", "capacity.traffic_per_s=0", "--set", "batching=[continuous]", "--jobs", "1"]


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("rdusim: error: "), err
    return lines[0]


def cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.mark.parametrize("sets,key,needle", [
    # a physical range per unit (rdusim.config.limits.UNIT_RANGES)
    (["arch.sn40l.socket.ddr.bandwidth_bytes_per_s=1e-300"], "bandwidth_bytes_per_s", "from 1 to 1e+18"),
    (["arch.sn40l.socket.ddr.bandwidth_bytes_per_s=1e19"], "bandwidth_bytes_per_s", "from 1 to 1e+18"),
    (["arch.sn40l.socket.ddr.efficiency=1e-9"], "ddr.efficiency", "from 0.001 to 1"),
    (["arch.dgx_h100.device.clock_hz=1e-3"], "clock_hz", "hertz"),
    (["arch.dgx_h100.device.tensor_flops_per_s=1e-5"], "tensor_flops_per_s", "operations per second"),
    (["stack.sn40l.host.per_step_s=1e9"], "per_step_s", "in seconds from"),
    (["stack.sn40l.host.per_step_s=1e-300"], "per_step_s", "0 or a number in seconds"),
    (["arch.sn40l.socket.hbm.capacity_bytes=1e-9"], "capacity_bytes", "in bytes"),
    (["batch_size=1e-300"], "batch_size", "integer"),
    # the wording names the unit of the key
    (["prompt_tokens=abc"], "prompt_tokens", "an integer"),
])
def test_every_number_has_a_physical_range(capsys, tmp_path, sets, key, needle):
    args = [a for s in sets for a in ("--set", s)]
    code, _, err = cli(capsys, "run", LLAMA_CHAT, "--out", str(tmp_path / "o"), *args)
    line = one_line(err)
    assert code == 2 and key in line and needle in line, line


@pytest.mark.parametrize("value,needle", [("abc", "events per second"), ("1e-300", "events per second")])
def test_a_rate_is_worded_as_a_rate(capsys, tmp_path, value, needle):
    code, _, err = cli(capsys, "run", SERVE, "--out", str(tmp_path / "o"), "--set", f"arrivals.rate_per_s={value}")
    line = one_line(err)
    assert code == 2 and needle in line and "in seconds" not in line, line


@pytest.mark.parametrize("group,ok", [(7, False), (0, False), (1, False), (96, False), (2 ** 21, False),
                                      (32, True), (128, True)])
def test_int4_group_sizes_are_what_the_format_can_be(capsys, tmp_path, group, ok):
    args = ["--set", "formats.weight.dtype=int4", "--set", f"formats.weight.group_size={group}",
            "--set", "platforms={sn40l: {arch: arch/sn40l.yaml, tp: 8}}"]
    code, _, err = cli(capsys, "run", LLAMA_CHAT, "--out", str(tmp_path / "o"), *args)
    if ok:
        assert code == 0, err
    else:
        assert code == 2 and "formats.weight.group_size" in one_line(err)


@pytest.mark.parametrize("flag,value,needle", [("--seq", "1000000000000", "seq"), ("--batch", "100000000", "batch"),
                                               ("--tp", "4096", "tp"), ("--seq", "0", "seq")])
def test_graph_sizes_are_bounded(capsys, flag, value, needle):
    code, _, err = cli(capsys, "graph", "llama2-7b", "--phase", "decode", flag, value)
    assert code == 2 and needle in one_line(err)


@pytest.mark.parametrize("what,make", [
    ("a directory", lambda d: (d / "w.yaml").mkdir() or d / "w.yaml"),
    ("a symbolic link loop", lambda d: (d / "a.yaml").symlink_to(d / "b.yaml") or (d / "b.yaml").symlink_to(d / "a.yaml")
     or d / "a.yaml"),
    ("a device", lambda d: Path("/dev/null")),
])
def test_a_workload_path_that_is_not_a_file_says_what_it_is(capsys, tmp_path, what, make):
    code, _, err = cli(capsys, "run", str(make(tmp_path)), "--out", str(tmp_path / "o"))
    line = one_line(err)
    assert code == 2 and what in line and "no such file" not in line, line


def test_a_huge_yaml_is_refused_before_it_is_parsed(capsys, tmp_path):
    big = tmp_path / "big.yaml"
    with big.open("w") as fh:
        fh.write("name: big\nkind: serve\nx: [")
        fh.write("1," * 3_000_000)
        fh.write("1]\n")
    start = time.perf_counter()
    code, _, err = cli(capsys, "run", str(big), "--out", str(tmp_path / "o"))
    line = one_line(err)
    assert code == 2 and "at most 4.0 MiB" in line
    assert time.perf_counter() - start < 2


def test_a_yaml_with_a_byte_order_mark_reads(capsys, tmp_path):
    w = tmp_path / "w.yaml"
    w.write_bytes(b"\xef\xbb\xbf" + (REPO_ROOT / "workloads/llama2_7b_chat.yaml").read_bytes())
    code, _, err = cli(capsys, "run", str(w), "--out", str(tmp_path / "o"), "--set", "platforms.dgx_h100.arch="
                       + str(REPO_ROOT / "arch/dgx_h100.yaml"), "--set", "platforms.sn40l.arch="
                       + str(REPO_ROOT / "arch/sn40l.yaml"), "--set", "platforms.dgx_a100.arch="
                       + str(REPO_ROOT / "arch/dgx_a100.yaml"))
    assert code == 0, err


def test_a_lookahead_past_the_context_is_refused(capsys, tmp_path):
    code, _, err = cli(capsys, "run", SPEC, "--out", str(tmp_path / "o"), "--set", "speculative.lookahead=100000")
    line = one_line(err)
    assert code == 2 and "speculative.lookahead" in line and "context of 8192" in line


def test_a_speculative_step_the_compiler_cannot_place_is_an_oom_result(monkeypatch):
    """The engine itself: a verification step the machine cannot place (the compiler's
    OutOfMemory, which escaped as a traceback for lookahead 100000 before the context check
    existed) is an OOM result with the compiler's reason."""
    from rdusim.config.speculative import SpeculativeSpec
    from rdusim.config.workload import load_workload
    from rdusim.engine import speculative as engine
    from rdusim.memory import OutOfMemory
    from rdusim.studies.model_run import load_model_for
    from rdusim.studies.speculative_run import draft_deployment, load_draft

    def cannot_place(self, *args, **kwargs):
        raise OutOfMemory("per socket: 323.28 GB of activations exceed HBM + DDR")

    monkeypatch.setattr(engine.StepModel, "extend_run", cannot_place)
    loaded = load_workload(SPEC, [("platforms", {"sn40l": {"arch": "arch/sn40l.yaml", "tp": 8, "fusion": "fused"}})])
    target = load_model_for(loaded)
    draft = load_draft(loaded, target)
    spec = SpeculativeSpec(draft="llama3-8b", lookahead=4, acceptance=0.7)
    t = engine.simulate_speculative(loaded.deployment("sn40l", target), draft_deployment(loaded, "sn40l", draft),
                                    spec, 1024, 256, 1)
    assert t.oom == "per socket: 323.28 GB of activations exceed HBM + DDR"
    assert t.latency_s != t.latency_s            # no time for a run that does not fit


def _oom_runs():
    return [
        ("serve", SERVE, [*SMALL, "--set", "platforms.dgx_h100.tp=1", "--set", "model=llama2-70b"]),
        ("serve coe", SERVE_COE, [*SMALL, "--set", "coe.count=5000"]),
        ("model", LLAMA_CHAT, ["--set", "model=bloom-176b", "--set", "platforms.dgx_h100.tp=1"]),
        ("speculative", SPEC, ["--set", "prompt_tokens=512", "--set", "output_tokens=7000", "--set", "batch_size=140",
                               "--set", "platforms={dgx_h100: {arch: arch/dgx_h100.yaml, tp: 8}}"]),
    ]


@pytest.mark.parametrize("name,workload,args", _oom_runs(), ids=[r[0] for r in _oom_runs()])
def test_oom_reasons_never_contradict_themselves(capsys, tmp_path, name, workload, args):
    """Every OOM row has its reason recorded; the table and the "Out of memory" list print
    the same reason (they said "the weights leave no HBM for a KV block" and then "no
    reason recorded by the study")."""
    out_dir = tmp_path / "o"
    code, out, err = cli(capsys, "run", workload, "--out", str(out_dir), *args)
    assert code == 0, err
    result = json.loads((out_dir / "results.json").read_text())
    ooms = [k for k, v in result["metrics"].items() if k.endswith(".oom") and v == 1]
    assert ooms, "the case must produce an OOM"
    assert NO_REASON not in out
    listed = out.split("Out of memory (reason: rows):")[1]
    table = [ln.split("OOM: ", 1)[1].strip() for ln in out.split("Out of memory (reason: rows):")[0].splitlines()
             if "OOM: " in ln]
    assert table
    for reason in table:
        assert reason in listed, (reason, listed)


def test_extreme_but_valid_numbers_give_finite_results_without_numpy_warnings(capsys, tmp_path):
    """A DDR bandwidth of 1e-300 made expert copies infinite: nan/inf latencies with oom = 0
    and numpy RuntimeWarnings on the terminal. Now the floor of the range (1 byte/s) is
    the most extreme input, and it gives finite (huge) latencies and no warning."""
    import math
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = cli(capsys, "run", str(REPO_ROOT / "workloads/coe150.yaml"), "--out", str(tmp_path / "o"),
                           "--jobs", "1", "--set", "arch.sn40l.socket.ddr.bandwidth_bytes_per_s=1")
    assert code == 0, err
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    metrics = json.loads((tmp_path / "o" / "results.json").read_text())["metrics"]
    lat = metrics["coe.sn40l.bs1.tok20.latency_s"]
    assert math.isfinite(lat) and lat > 1e9           # a 13 GB expert copy at 1 byte/s
