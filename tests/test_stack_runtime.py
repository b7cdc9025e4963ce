"""Serving stacks as releases, their runtime terms by mechanism (issue 20, item 1), the
speculative / cluster refusals (item 2), and the kinds `rdusim stack show` prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from rdusim.cli import main
from rdusim.config.arch import load_arch
from rdusim.config.model import load_model
from rdusim.config.stack import Sampling, load_stack
from rdusim.config.stack_terms import TermKind, stack_terms, term_kinds
from rdusim.engine.host_runtime import request_host_parts, step_host_parts, step_host_s
from rdusim.errors import InputError
from rdusim.validate import load_references

ROOT = Path(__file__).resolve().parents[1]
SN40L = load_arch(ROOT / "arch" / "sn40l.yaml")
H100 = load_arch(ROOT / "arch" / "dgx_h100.yaml")
LLAMA = load_model("llama2-7b")


# ---- the bottom-up stack's step terms, by hand ----
@pytest.mark.parametrize("batch", [1, 8, 64])
def test_bottom_up_step_terms_by_hand(batch):
    s = load_stack("sambanova")
    pcie = SN40L.links.pcie
    parts = step_host_parts(s, SN40L, LLAMA, batch)
    ids = pcie.latency_s + batch * 4 / pcie.bandwidth_bytes_per_s          # batch int32 ids one way
    assert parts["round_trip"] == pytest.approx(2 * ids, rel=1e-12)
    assert parts["wakeup"] == s.runtime.host_wakeup_s
    assert parts["sampling"] == 0.0                                        # sampled on chip
    assert parts["host_loop"] == pytest.approx(s.host.per_step_s + batch * s.host.per_sequence_step_s)
    assert step_host_s(s, SN40L, LLAMA, batch) == pytest.approx(sum(parts.values()), rel=1e-12)
    assert set(parts) == {"round_trip", "wakeup", "sampling", "host_loop"}
    assert sum(parts.values()) < 1e-4 * max(1, batch / 8)                 # tens of us, not the fitted 0.93 ms


def test_a_prefill_sends_its_prompt_and_host_sampling_ships_the_logits():
    s = load_stack("sambanova")
    pcie = SN40L.links.pcie
    pre = step_host_parts(s, SN40L, LLAMA, 2, inputs=512)
    assert pre["round_trip"] == pytest.approx(2 * pcie.latency_s + (2 * 512 + 2) * 4 / pcie.bandwidth_bytes_per_s)
    host = load_stack("sambanova", [("runtime.sampling", "host")])
    assert host.runtime.sampling == Sampling.HOST and "override" in host.sources["runtime.sampling"]
    hp = step_host_parts(host, SN40L, LLAMA, 4)
    logits = 4 * LLAMA.vocab_size
    assert hp["sampling"] == pytest.approx(logits * 2 / pcie.bandwidth_bytes_per_s
                                           + logits * host.runtime.host_sample_s_per_logit)
    assert hp["round_trip"] == pytest.approx(2 * pcie.latency_s + 4 * 4 / pcie.bandwidth_bytes_per_s)


def test_a_stack_without_runtime_pays_its_constants_bit_for_bit():
    for name in ("nemo", "vllm", "tensorrt_llm"):
        s = load_stack(name)
        assert s.runtime is None and not s.added
        for b in (1, 3, 64):
            assert step_host_s(s, H100, LLAMA, b) == s.host.step_s(b)
            assert step_host_parts(s, H100, LLAMA, b) == {"host_loop": s.host.per_step_s + s.host.per_sequence_step_s * b}


# ---- releases ----
def test_the_coe_release_is_the_bottom_up_stack_plus_two_fitted_terms():
    base, rel = load_stack("sambanova"), load_stack("sambanova_coe_2024")
    assert rel.base == "sambanova" and set(rel.added) == {"generation_loop", "expert_dispatch"}
    assert (rel.host, rel.runtime, rel.scheduler, rel.launch) == (base.host, base.runtime, base.scheduler, base.launch)
    gl, ed = rel.added["generation_loop"], rel.added["expert_dispatch"]
    assert gl.per_step_s > 0 and ed.per_model_load_s > 0
    assert rel.costs.per_step_s == pytest.approx(base.host.per_step_s + gl.per_step_s)
    assert rel.costs.per_model_load_s == pytest.approx(ed.per_model_load_s)
    parts = step_host_parts(rel, SN40L, LLAMA, 1)
    assert parts["generation_loop"] == gl.per_step_s
    assert sum(parts.values()) == pytest.approx(step_host_s(rel, SN40L, LLAMA, 1), rel=1e-12)
    assert request_host_parts(rel, 3e-6, cold=True) == {"request_setup": base.host.per_request_s,
                                                         "program_load": 3e-6, "expert_dispatch": ed.per_model_load_s}
    kinds = term_kinds(rel)
    assert kinds["generation_loop"] == kinds["expert_dispatch"] == "fitted"
    assert kinds["round_trip"] == kinds["program_load"] == kinds["sampling"] == "bottom-up"
    assert kinds["host_loop"] == kinds["wakeup"] == kinds["request_setup"] == "assumed"


def test_the_default_sambanova_stack_is_fitted_to_nothing():
    s = load_stack("sambanova")
    assert not s.fitted and not s.added
    assert all(t.kind != TermKind.FITTED for t in stack_terms(s))
    assert not any(src.lower().startswith("fitted") for src in s.sources.values())


def test_every_fitted_to_names_calibration_references_that_exist():
    """Stacks and arch files: each fitted_to id is a reference, of role calibration."""
    refs = {loc.ref.id: loc.ref for loc in load_references([str(p) for p in sorted((ROOT / "references").glob("*.yaml"))])}
    found = 0

    def walk(node, where):
        nonlocal found
        if isinstance(node, dict):
            if "fitted_to" in node:
                for rid in node["fitted_to"]:
                    found += 1
                    assert rid in refs, (where, rid)
                    assert refs[rid].role.value == "calibration", (where, rid)
            for k, v in node.items():
                walk(v, f"{where}.{k}")

    for path in sorted((ROOT / "stacks").glob("*.yaml")) + sorted((ROOT / "arch").glob("*.yaml")):
        walk(yaml.safe_load(path.read_text()), path.name)
    assert found >= 2 + 2 * 24      # the CoE release's two terms, the SN40L's two launch costs


@pytest.mark.parametrize("text,key,says", [
    ("name: x\nbase: sambanova\ndescription: d\nhost: {}\n", "host", "only"),
    ("name: x\nbase: nosuch\ndescription: d\n", "base", "a stack in stacks/"),
    ("name: x\nbase: sambanova\ndescription: d\nadded:\n  a: {per_step_s: {value: 1.0e-3, source: s}}\n",
     "added.a.mechanism", "what the term is"),
    ("name: x\nbase: sambanova\ndescription: d\nadded:\n  a: {mechanism: m, per_step_s: {value: 1.0e-3, source: s, "
     "fitted_to: []}}\n", "added.a.per_step_s.fitted_to", "a non-empty list of reference ids"),
    ("name: x\nbase: sambanova\ndescription: d\nadded:\n  a: {mechanism: m, per_step_s: {value: 1.0e-3, source: s, "
     "fitted: [q]}}\n", "added.a.per_step_s", "{value: <number>, source: <citation>}"),
    ("name: x\nbase: sambanova_coe_2024\ndescription: d\nadded:\n  generation_loop: {mechanism: m}\n",
     "added.generation_loop", "not already added"),
])
def test_bad_releases_name_the_key(tmp_path, text, key, says):
    p = tmp_path / "rel.yaml"
    p.write_text(text)
    with pytest.raises(InputError) as e:
        load_stack(str(p))
    assert e.value.key == key and says in e.value.expected


def test_a_release_of_a_release_keeps_every_added_term(tmp_path):
    p = tmp_path / "rel.yaml"
    p.write_text("name: later\nbase: sambanova_coe_2024\ndescription: d\nadded:\n"
                 "  router_rpc: {mechanism: m, per_request_s: {value: 1.0e-3, source: 'assumed: x'}}\n")
    s = load_stack(str(p))
    assert list(s.added) == ["generation_loop", "expert_dispatch", "router_rpc"]
    assert s.costs.per_request_s == pytest.approx(s.host.per_request_s + 1e-3)


# ---- the command line ----
def test_stack_show_lists_each_terms_kind_and_source(capsys):
    assert main(["stack", "show", "sambanova_coe_2024"]) == 0
    out = capsys.readouterr().out
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("  ") and ln.split()}
    assert "bottom-up" in lines["round_trip"] and "assumed" in lines["host_loop"]
    assert "fitted" in lines["generation_loop"] and "fitted" in lines["expert_dispatch"]
    assert "release: stack sambanova" in out
    assert "fitted_to: ['sn40l-paper.table2.h100.bs1.tok20.expert'" in lines["added.generation_loop.per_step_s"]


def test_a_model_run_prints_the_decode_step_by_mechanism(tmp_path, capsys):
    assert main(["run", "workloads/llama2_7b_chat.yaml", "--out", str(tmp_path), "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("sn40l ") and "kernels" in ln)
    for part in ("sambanova:", "kernels", "launch", "round_trip", "(0.", "bottom-up", "wakeup", "host_loop", "assumed"):
        assert part in line, part
    m = json.loads((tmp_path / "results.json").read_text())["metrics"]
    step = sum(m[f"model.sn40l.breakdown.step.{k}_s"] for k in ("compute", "memory", "launch", "collective", "host"))
    assert step == pytest.approx(m["model.sn40l.tpot_s"], rel=1e-9)
    host = sum(v for k, v in m.items() if k.startswith("model.sn40l.breakdown.step.host."))
    assert host == pytest.approx(m["model.sn40l.breakdown.step.host_s"], rel=1e-9)
    assert host < 0.05 * step          # bottom-up: the kernels dominate, not a fitted host term


def test_speculative_on_clusters_is_refused_with_exit_2(capsys):
    spec = "speculative={draft: llama3-8b, lookahead: 2, acceptance: 0.7}"
    assert main(["run", "workloads/llama3_70b_two_nodes.yaml", "--set", spec]) == 2
    err = capsys.readouterr().err
    assert "llama3_70b_two_nodes.yaml" in err and "speculative" in err and "clusters" in err
    assert "Traceback" not in err


def test_a_fused_draft_loop_with_host_sampling_is_refused_with_exit_2(capsys):
    assert main(["run", "workloads/llama3_70b_speculative.yaml", "--set", "speculative.fused_draft_loop=true",
                 "--set", "stack.sn40l.runtime.sampling=host"]) == 2
    err = capsys.readouterr().err
    assert "speculative.fused_draft_loop" in err and "samples on the host" in err and "Traceback" not in err


# ---- invariants ----
@settings(max_examples=80, deadline=None)
@given(batch=st.integers(1, 256), inputs=st.integers(1, 8192), outputs=st.integers(1, 9),
       sampling=st.sampled_from(["device", "host"]), release=st.booleans())
def test_step_terms_sum_to_the_step_and_grow_with_what_crosses(batch, inputs, outputs, sampling, release):
    """The parts sum to the host time the engine is given; more sequences, more input tokens
    or more returned positions never cost less; host sampling never costs less than on chip."""
    name = "sambanova_coe_2024" if release else "sambanova"
    s = load_stack(name, [("runtime.sampling", sampling)])
    t = step_host_s(s, SN40L, LLAMA, batch, inputs, outputs)
    assert sum(step_host_parts(s, SN40L, LLAMA, batch, inputs, outputs).values()) == pytest.approx(t, rel=1e-12)
    assert step_host_s(s, SN40L, LLAMA, batch + 1, inputs, outputs) >= t
    assert step_host_s(s, SN40L, LLAMA, batch, inputs + 1, outputs) >= t
    assert step_host_s(s, SN40L, LLAMA, batch, inputs, outputs + 1) >= t
    on_chip = load_stack(name, [("runtime.sampling", "device")])
    assert t >= step_host_s(on_chip, SN40L, LLAMA, batch, inputs, outputs) * (1 - 1e-12)
