"""The shipped references against the shipped specs: every fitted number names calibration
references that exist, every calibration reference has a parameter fitted to it, and the
table `rdusim validate` prints is pinned row by row (role, status, fit group size) with its
exit code. When a change is meant to move a row, update PINNED below and say why."""

from pathlib import Path

import pytest

from rdusim import cli
from rdusim.config.fitted import fitted_parameters
from rdusim.config.workload import REPO_ROOT
from rdusim.config.yamlio import load_yaml
from rdusim.validate import default_reference_files, load_references, validation_rows

C, V = "calibration", "validation"
FUSION = ("llama2_7b_4k_prefill", "llama2_7b_4k_train", "sparsegpt_13b_2k_train", "llama2_70b_4k_prefill",
          "bloom_176b_8k_prefill", "mistral_7b_2k_prefill", "mistral_7b_4k_prefill", "falcon_40b_2k_prefill",
          "llava1_5_7b_4k_prefill", "llama2_7b_4k_decode", "llama2_70b_4k_decode", "bloom_176b_8k_decode",
          "mistral_7b_2k_decode", "mistral_7b_4k_decode", "falcon_40b_2k_decode", "llava1_5_7b_4k_decode")
DECODE = [b for b in FUSION if b.endswith("decode")]

# id -> (role, status, parameters fitted on its group, points of the group)
PINNED = {
    "sn40l-paper.table2.h100.switch": (C, "PASS", 1, 1),
    "sn40l-paper.table2.h100.bs1.tok20.expert": (C, "PASS", 2, 2),
    "sn40l-paper.table2.h100.bs1.tok200.expert": (C, "PASS", 2, 2),
    "sn40l-paper.table2.h100.bs1.tok20.overall": (V, "PASS", 0, 0),
    "sn40l-paper.table2.h100.bs8.tok20.overall": (V, "FAIL", 0, 0),
    **{f"sn40l-paper.fig6.{b}.fusion": (C, "IN RANGE", 2, 24) for b in FUSION},
    **{f"sn40l-paper.fig6.{b}.ho": (C, "IN RANGE", 2, 24) for b in DECODE},
    "sn40l-paper.fig6.flashfftconv_1m.fusion": (C, "PASS", 2, 24),
    "sn40l-paper.fig6.flashfftconv_1m.kernels": (V, "PASS", 0, 0),
    "sn40l-paper.fig3.monarch.unfused_oi": (V, "PASS", 0, 0),
    "sn40l-paper.fig3.monarch.fused_oi": (V, "FAIL", 0, 0),
    "nccl.h100.allreduce.8mb": (C, "PASS", 2, 2),
    "nccl.h100.allreduce.32mb": (C, "PASS", 2, 2),
    "nccl.h100.allreduce.1mb": (V, "IN RANGE", 0, 0),
    "nccl.h100.allreduce.8kb": (C, "IN RANGE", 4, 17),
    "nccl.a100.allreduce.8mb": (C, "PASS", 2, 2),
    "nccl.a100.allreduce.32mb": (C, "PASS", 2, 2),
    "nccl.a100.allreduce.1mb": (V, "IN RANGE", 0, 0),
    "nccl.a100.allreduce.8kb": (V, "IN RANGE", 0, 0),
    **{f"nemo.llama2-7b.h100.tp{tp}.bs{bs}": (C, "PASS", 4, 17) for tp in (1, 2, 4, 8) for bs in (1, 2, 4, 8)},
}
PINNED_EXIT = 1     # two validation references miss (README, "Calibration and validation")


def shipped_references():
    return {loc.ref.id: loc.ref for loc in load_references(default_reference_files())}


def test_every_fitted_number_names_existing_calibration_references():
    refs = shipped_references()
    params = fitted_parameters(REPO_ROOT)
    assert params, "no fitted_to in arch/ or stacks/"
    for p in params:
        for ref in p.fitted_to:
            assert ref in refs, f"{p.label}: fitted_to names {ref!r}, which no references/*.yaml defines"
            assert refs[ref].role.value == C, f"{p.label}: fitted to {ref}, a {refs[ref].role.value} reference"


def test_every_calibration_reference_has_a_parameter_fitted_to_it():
    named = {ref for p in fitted_parameters(REPO_ROOT) for ref in p.fitted_to}
    orphans = [i for i, r in shipped_references().items() if r.role.value == C and i not in named]
    assert not orphans, f"calibration references no fitted_to names (make them validation, or name them): {orphans}"


def _numbers(node, path=""):
    if isinstance(node, dict):
        if "value" in node and "source" in node:
            yield path, node
            return
        for k, v in node.items():
            yield from _numbers(v, f"{path}.{k}" if path else k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _numbers(v, f"{path}[{i}]")


# Fitted to published data that is not (yet) a reference rdusim can simulate: validate cannot
# count these. Each needs a reference (and a workload whose metric it reads) to leave this list.
FITTED_OUTSIDE_REFERENCES = {
    "kernel.tensor_fp8_efficiency": "DeepGEMM v1.0.0 FP8 GEMM rows (benchmarks/fit_fp8_gemm.py): no shipped "
                                    "workload reports a single GEMM's throughput",
}


@pytest.mark.parametrize("folder", ["arch", "stacks"])
def test_a_source_that_says_fitted_carries_fitted_to(folder):
    """Machine-readable fits: a number whose source says it was fitted lists the references."""
    for f in sorted((REPO_ROOT / folder).glob("*.yaml")):
        for key, num in _numbers(load_yaml(f)):
            says = num["source"].lower().startswith("fitted")
            if says and key in FITTED_OUTSIDE_REFERENCES:
                continue
            assert says == ("fitted_to" in num), f"{f.name} {key}: source {num['source'][:60]!r}..."


def test_the_validate_table_is_pinned(capsys):
    rows = validation_rows(default_reference_files())
    got = {r.id: (r.role, r.status, r.fit_parameters, r.fit_points) for r in rows}
    assert got == PINNED
    assert cli.main(["validate"]) == PINNED_EXIT
    out = capsys.readouterr().out
    for ref_id, (role, status, *_rest) in PINNED.items():
        line = next(ln for ln in out.splitlines() if ln.startswith(ref_id + " "))
        assert status in line
    # the fits that reproduce their points by construction are said so
    assert "with as many parameters as points, reproduced by construction" in out


def test_no_reference_file_uses_a_midpoint_for_a_published_range():
    """A published range is written as `range:`, not as a midpoint with a tolerance spanning it."""
    for f in default_reference_files():
        for r in load_yaml(Path(f))["references"]:
            if "tolerance" in r:
                assert r["tolerance"] <= 0.25, f"{f}: {r['id']} has tolerance {r['tolerance']}: a range?"
