"""The SN40L engine's Chrome trace: numeric pids/tids named by metadata, one process per
socket and one for the host, threads for kernels, launches, pipeline stages, memory
channels and links; valid (no overlapping spans on a thread); the fusion study's steps
laid end to end."""

from __future__ import annotations

import json

import pytest

from rdusim.cli import main
from rdusim.config.arch import load_arch
from rdusim.config.model import load_model
from rdusim.config.policy import FusionPolicy, LaunchMode
from rdusim.engine.rdu.step import simulate_step
from rdusim.graph.model_graph import build_model_graph
from rdusim.graph.phase import Phase
from rdusim.report.trace import check_trace

ARCH = load_arch("arch/sn40l.yaml")
GRAPH = build_model_graph(load_model("llama2-7b"), Phase.DECODE, 1, 512, tp=8, layers=2)


def names(events, what):
    return {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == what}


def spans(events):
    return [e for e in events if e["ph"] == "X"]


@pytest.mark.parametrize("launch", [LaunchMode.SOFTWARE, LaunchMode.HARDWARE])
def test_step_trace_has_host_and_every_socket(launch):
    step = simulate_step(ARCH, GRAPH, fusion=FusionPolicy.FUSED, launch=launch, tp=8, trace=True)
    ev = list(step.trace)
    assert check_trace({"traceEvents": ev}, allow_nesting=False) == []
    assert all(isinstance(e["pid"], int) and isinstance(e["tid"], int) for e in ev)
    procs = {pid: name for (pid, _), name in names(ev, "process_name").items()}
    assert sorted(procs.values()) == ["sn40l/host"] + [f"sn40l/socket{i}" for i in range(8)]
    threads = names(ev, "thread_name")
    sock0 = next(p for p, n in procs.items() if n == "sn40l/socket0")
    host = next(p for p, n in procs.items() if n == "sn40l/host")
    lanes0 = {n for (p, _), n in threads.items() if p == sock0}
    assert {"compute", "hbm", "p2p link", "stage attn.qkv", "stage tp.allreduce_mlp"} <= lanes0
    launches = {p for (p, t), n in threads.items() if n == "launch"
                for e in spans(ev) if e["pid"] == p and e["tid"] == t}
    # software orchestration: the host launches; hardware: the AGCUs of each socket do
    assert (host in launches) and ((sock0 in launches) == (launch == LaunchMode.HARDWARE))
    # every socket shows the same spans
    by_pid: dict[int, list] = {}
    for e in spans(ev):
        by_pid.setdefault(e["pid"], []).append((e["name"], e["ts"], e["dur"], threads[(e["pid"], e["tid"])]))
    socks = [sorted(v) for p, v in by_pid.items() if p != host]
    assert len(socks) == 8 and all(s == socks[0] for s in socks)
    # kernels on the compute thread match the step's rows; stages lie inside their kernel
    kernels = [e for e in spans(ev) if e["pid"] == sock0 and e["cat"] == "kernel"]
    assert len(kernels) == step.kernels
    for row, k in zip(step.records, sorted(kernels, key=lambda e: e["ts"])):
        assert k["name"] == row["name"] and k["ts"] == pytest.approx(row["start_s"] * 1e6)
    for e in spans(ev):
        if e["pid"] == sock0 and threads[(e["pid"], e["tid"])].startswith("stage "):
            k = next(k for k in kernels if k["ts"] <= e["ts"] + 1e-6 < k["ts"] + k["dur"])
            assert e["ts"] + e["dur"] <= k["ts"] + k["dur"] + 1e-6


def test_no_trace_unless_asked():
    assert simulate_step(ARCH, GRAPH, fusion=FusionPolicy.FUSED, launch=LaunchMode.HARDWARE, tp=8).trace == ()


def test_fusion_study_trace_lays_steps_end_to_end(tmp_path):
    assert main(["run", "tests/data/fusion_small.yaml", "--out", str(tmp_path), "--trace"]) == 0
    obj = json.loads((tmp_path / "trace.json").read_text())
    assert check_trace(obj, allow_nesting=False) == []
    ev = obj["traceEvents"]
    procs = {n for n in names(ev, "process_name").values()}
    assert procs == {"sn40l/host", "sn40l/socket0"}
    threads = names(ev, "thread_name")
    steps = sorted((e for e in spans(ev) if threads[(e["pid"], e["tid"])] == "steps"), key=lambda e: e["ts"])
    labels = [e["name"] for e in steps]
    assert labels[:3] == ["llama_decode unfused", "llama_decode fused_so", "llama_decode fused_ho"]
    for a, b in zip(steps, steps[1:]):
        assert a["ts"] + a["dur"] < b["ts"]
