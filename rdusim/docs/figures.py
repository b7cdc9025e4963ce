"""Every figure the README and docs/ print, each made by the command it comes from.

A figure is a function of :class:`rdusim.docs.runs.Runs` returning its text; the name is
what the markers in the markdown use (:mod:`rdusim.docs.markers`). Block figures return
whole lines (a code fence or a markdown table); inline figures a fragment of a sentence.
A figure whose command's output or metrics changed shape fails loudly, naming itself.
This module holds the main jobs' figures and imports every other module of figures; the
registry they all add to is :mod:`rdusim.docs.figure_base`.
"""

import re
from typing import Any

from rdusim.docs import (figures_adapters, figures_cost, figures_finetune, figures_nodes,  # noqa: F401
                         figures_p2p, figures_plan, figures_prefix, figures_serve, figures_speed,
                         figures_stacks)   # (their figures register on import)
from rdusim.docs.figure_base import CHAT, COE, FIGURES, PLATFORMS, VALIDATE, fence, figure, ms as _ms  # noqa: F401  (re-exported)
from rdusim.docs.runs import Runs, section
from rdusim.validate import default_reference_files, fit_groups_for, validation_rows
from rdusim.validate_table import fits_summary, role_summary
from rdusim.validate_fits import compact_ids


def _value(key: str, value: Any) -> str:
    if isinstance(value, (int, float)) and key.endswith("_s"):
        return "0" if value == 0 else _ms(float(value))
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# ---- the main job: rdusim run workloads/coe150.yaml

@figure("coe150.summary")
def coe150_summary(runs: Runs) -> str:
    out = runs.output(COE)
    return fence("\n\n".join(section(out, h) for h in (
        "Speedup of sn40l", "95% confidence intervals of the speedups", "Capacity per node")))


@figure("coe150.footprint")
def coe150_footprint(runs: Runs) -> str:
    m = runs.metrics(COE)

    def nodes(p: str, n: int) -> int:
        return int(m[f"coe.footprint.{p}.nodes_for{n}"])

    first = f"150 experts: {nodes('sn40l', 150)} SN40L node, {nodes('dgx_h100', 150)} DGX H100, " \
            f"{nodes('dgx_a100', 150)} DGX A100"
    return first + "; 850: " + ", ".join(str(nodes(p, 850)) for p in PLATFORMS)


# ---- where a decode step's time goes: rdusim run workloads/llama2_7b_chat.yaml

@figure("chat.decode_step")
def chat_decode_step(runs: Runs) -> str:
    out = runs.output(CHAT)
    return fence("\n\n".join(section(out, h) for h in ("Mean decode step (us)", "Mean decode step by mechanism")))


OOM = "rdusim run workloads/llama2_7b_chat.yaml --set model=bloom-176b --set platforms.dgx_h100.tp=1"


@figure("chat.bloom_oom")
def chat_bloom_oom(runs: Runs) -> str:
    """The out-of-memory line of Bloom-176B at TP1 on one H100, from the reason onwards."""
    line = next((ln for ln in runs.output(OOM).splitlines() if ln.startswith("dgx_h100") and "OOM:" in ln), None)
    if line is None:
        raise KeyError("no dgx_h100 OOM line (does Bloom-176B at TP1 fit one H100 now?)")
    reason = line.split("OOM:", 1)[1].strip()
    if reason.startswith("dgx_h100"):
        reason = reason.split(": ", 1)[1]
    return f"`dgx_h100 ... OOM: {reason}`"


A100_B52 = ("rdusim run workloads/llama2_7b_chat_a100.yaml --set batch_size=52 --set prompt_tokens=2048 "
            "--set output_tokens=128 --set platforms.dgx_a100.tp=1")


@figure("chat.a100_b52")
def chat_a100_b52(runs: Runs) -> str:
    """Llama-2-7B batch 52, 2048/128 on one A100 80GB: HBM used of usable, and the activations (GB)."""
    m = runs.metrics(A100_B52)
    if m["model.dgx_a100.oom"]:
        raise KeyError("the A100 batch-52 run is out of memory now: rewrite the sentence")
    gb = {k: m[f"model.dgx_a100.memory.{k}_bytes"] / 1e9 for k in ("hbm_used", "hbm_usable", "activation")}
    return f"{gb['hbm_used']:.2f} of {gb['hbm_usable']:.2f} GB (activations {gb['activation']:.2f})"


# ---- the fusion study: rdusim run workloads/fusion_suite.yaml

FUSION = "rdusim run workloads/fusion_suite.yaml"


@figure("fusion.decode_kernel")
def fusion_decode_kernel(runs: Runs) -> str:
    """The fused Llama-2-7B decode layer: PCUs and PMUs allocated, HBM bandwidth reached."""
    k = runs.extra(FUSION)["largest_fused_kernel"]["llama2_7b_4k_decode"]
    return (f"allocated {k['pcu_util']:.0%} of the PCUs and {k['pmu_util']:.1%} of the PMUs and reaches about "
            f"{k['hbm_bw_util']:.0%} of peak HBM bandwidth")


@figure("fusion.decode_busy")
def fusion_decode_busy(runs: Runs) -> str:
    return f"~{runs.extra(FUSION)['largest_fused_kernel']['llama2_7b_4k_decode']['pcu_busy']:.0%}"


@figure("fusion.ho_7b")
def fusion_ho_7b(runs: Runs) -> str:
    return f"{runs.metrics(FUSION)['fusion.llama2_7b_4k_decode.speedup.fused_ho_vs_fused_so']:.1f}x"


@figure("fusion.decode_kernels")
def fusion_decode_kernels(runs: Runs) -> str:
    m = runs.metrics(FUSION)
    k = "fusion.llama2_7b_4k_decode.{}.kernels"
    return f"Unfused 7B decode ({m[k.format('unfused')]:.0f} kernels) grows by exactly kernels x cost, fused SO " \
           f"({m[k.format('fused_so')]:.0f} kernels)"


@figure("coe150.dgx_max_experts")
def coe150_dgx_max_experts(runs: Runs) -> str:
    m = runs.metrics(COE)
    got = {m[f"coe.capacity.{p}.max_experts"] for p in ("dgx_h100", "dgx_a100")}
    if len(got) != 1:
        raise KeyError("the two DGX systems host different expert counts: rewrite the sentence")
    return f"{got.pop():.0f}"


# ---- machine families: the TPU v5e and roofline mode

TPU = "rdusim run workloads/tpu_v5e_llama3_70b.yaml"


@figure("tpu.table")
def tpu_table(runs: Runs) -> str:
    return fence(section(runs.output(TPU), "platform     policy"))


@figure("roofline.tpu")
def roofline_tpu(runs: Runs) -> str:
    m = runs.metrics(TPU)
    return f"{m['model.v5e.realistic_over_ideal']:.2f} on the v5e and {m['model.dgx_h100.realistic_over_ideal']:.2f} " \
           "on the DGX H100"


@figure("roofline.chat")
def roofline_chat(runs: Runs) -> str:
    m = runs.metrics(CHAT)
    return " / ".join(f"{m[f'model.{p}.realistic_over_ideal']:.2f}" for p in PLATFORMS)


# ---- calibration and validation: rdusim validate

def _validate(runs: Runs):
    """(rows, fit groups) of ``rdusim validate``, run once per regeneration."""
    def run():
        import io

        rows = validation_rows(default_reference_files(), stream=io.StringIO())
        return rows, fit_groups_for(rows)
    return runs.memo(VALIDATE, run)


@figure("validate.summary")
def validate_summary(runs: Runs) -> str:
    rows, groups = _validate(runs)
    lines = [f"{role}: {role_summary([r for r in rows if r.role == role])}" for role in ("calibration", "validation")]
    return fence("\n".join(lines + [fits_summary(groups)]))


@figure("validate.fits")
def validate_fits(runs: Runs) -> str:
    _, groups = _validate(runs)
    out = ["| group | parameters | fitted to | points | dof | fit by |", "|---|---|---|---|---|---|"]
    for g in groups:
        params = "; ".join(f"{c[0].file} `{c[0].key}` = {_value(c[0].key, c[0].value)}"
                           + (f" (also in {', '.join(x.file for x in c[1:])})" if len(c) > 1 else "")
                           for c in g.parameters)
        scripts = sorted({m for c in g.parameters for m in re.findall(r"benchmarks/\w+\.py", c[0].source)})
        refs = ", ".join(compact_ids(g.references, width=10_000))
        out.append(f"| {g.label} | {params} | {refs} | {g.points} | {g.dof} | {', '.join(scripts) or '-'} |")
    return "\n".join(out)


@figure("validate.predictions")
def validate_predictions(runs: Runs) -> str:
    rows, _ = _validate(runs)
    out = ["| reference | published | simulated [95% CI] | result |", "|---|---|---|---|"]
    for r in rows:
        if r.role != "validation":
            continue
        scale, unit = (1e6, " us") if r.metric.endswith("_s") else (1.0, "")

        def num(x: float) -> str:
            return f"{x * scale:.4g}"

        pub = (f"{num(r.range[0])}-{num(r.range[1])}" if r.is_range else num(r.expected)) + unit
        sim = "-" if r.simulated is None else num(r.simulated) + unit
        if r.ci95_low is not None:
            sim += f" [{num(r.ci95_low)}-{num(r.ci95_high)}]"
        res = r.status if r.error is None else f"{r.error:+.1%}, {r.status}"
        out.append(f"| `{r.id}` | {pub} | {sim} | {'**' + res + '**' if not r.passed else res} |")
    return "\n".join(out)


def _row(runs: Runs, ref_id: str):
    rows, _ = _validate(runs)
    for r in rows:
        if r.id == ref_id:
            return r
    raise KeyError(f"no reference {ref_id}")


@figure("validate.nemo_max_error")
def validate_nemo_max_error(runs: Runs) -> str:
    rows, _ = _validate(runs)
    return f"{max(abs(r.error) for r in rows if r.id.startswith('nemo.')):.1%}"


@figure("validate.coe_bs8_error")
def validate_coe_bs8_error(runs: Runs) -> str:
    r = _row(runs, "sn40l-paper.table2.h100.bs8.tok20.overall")
    return f"{r.error:+.1%}, {'pass' if r.passed else 'miss'}"


@figure("validate.n_calibration")
def validate_n_calibration(runs: Runs) -> str:
    rows, _ = _validate(runs)
    return str(sum(r.role == "calibration" for r in rows))


@figure("validate.n_calibration_ranges")
def validate_n_calibration_ranges(runs: Runs) -> str:
    rows, _ = _validate(runs)
    return str(sum(r.role == "calibration" and r.is_range for r in rows))


@figure("validate.n_zero_dof")
def validate_n_zero_dof(runs: Runs) -> str:
    _, groups = _validate(runs)
    return str(sum(g.points for g in groups if g.dof <= 0))


@figure("validate.nemo_dof")
def validate_nemo_dof(runs: Runs) -> str:
    return str(_row(runs, "nemo.llama2-7b.h100.tp1.bs1").dof)


def _spread(runs: Runs, suffix: str) -> str:
    rows, _ = _validate(runs)
    got = [r.simulated for r in rows if r.id.startswith("sn40l-paper.fig6.") and r.id.endswith(suffix)
           and "decode" in r.id and r.simulated is not None]
    return f"{min(got):.1f}-{max(got):.1f}x"


@figure("validate.decode_fusion_range")
def validate_decode_fusion_range(runs: Runs) -> str:
    return _spread(runs, "_decode.fusion")


@figure("validate.decode_ho_range")
def validate_decode_ho_range(runs: Runs) -> str:
    return _spread(runs, "_decode.ho")
