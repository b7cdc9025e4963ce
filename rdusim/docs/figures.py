"""Every figure the README and docs/ print, each made by the command it comes from.

A figure is a function of :class:`rdusim.docs.runs.Runs` returning its text; the name is
what the markers in the markdown use (:mod:`rdusim.docs.markers`). Block figures return
whole lines (a code fence or a markdown table); inline figures a fragment of a sentence.
A figure whose command's output or metrics changed shape fails loudly, naming itself.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Mapping

from rdusim.docs.runs import Runs, section

COE = "rdusim run workloads/coe150.yaml"
CHAT = "rdusim run workloads/llama2_7b_chat.yaml"
VALIDATE = "rdusim validate"
SERVE = "rdusim run workloads/serve_llama2_7b.yaml"
SERVE_COE = "rdusim run workloads/serve_coe150.yaml"

LAUNCH = {"graph": "CUDA graph", "eager": "eager", "ho": "HO", "so": "SO", "xla": "XLA program"}
PLATFORMS = ("sn40l", "dgx_h100", "dgx_a100")

FIGURES: dict[str, Callable[[Runs], str]] = {}


def figure(name: str):
    def register(fn: Callable[[Runs], str]) -> Callable[[Runs], str]:
        FIGURES[name] = fn
        return fn
    return register


def fence(text: str) -> str:
    return f"```\n{text}\n```"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.3g} us"


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
    return fence(section(runs.output(CHAT), "Mean decode step"))


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


# ---- serving stacks: stacks/*.yaml

@figure("stacks.table")
def stacks_table(runs: Runs) -> str:
    from rdusim.config.fitted import fitted_parameters
    from rdusim.config.stack import load_stack, stack_names
    from rdusim.config.workload import REPO_ROOT
    from rdusim.validate_fits import compact_ids

    fitted = {(p.file, p.key): p for p in fitted_parameters(REPO_ROOT, ("stacks",))}
    terms = ("per_request_s", "per_model_load_s", "per_step_s", "per_sequence_step_s")
    rows = ["| stack | launch | per request | per model load | per step | per sequence-step | fitted to |",
            "|---|---|---|---|---|---|---|"]
    for name in stack_names():
        stack = load_stack(name)
        cells, refs = [], {}
        for term in terms:
            key = f"host.{term}"
            value = getattr(stack.host, term)
            fit = fitted.get((f"stacks/{name}.yaml", key))
            src = stack.sources.get(key, "")
            kind = "fitted" if fit else ("assumed" if src.lower().startswith("assumed") else "")
            cells.append(_value(key, value) + (f" ({kind})" if kind and value else ""))
            if fit:
                refs.update(dict.fromkeys(fit.fitted_to))
        fitted_to = ", ".join(compact_ids(list(refs), width=10_000)) if refs else "nothing"
        launch = LAUNCH.get(stack.launch.value, stack.launch.value)
        rows.append(f"| `{name}` | {launch} | " + " | ".join(cells) + f" | {fitted_to} |")
    return "\n".join(rows)


# ---- calibration and validation: rdusim validate

def _validate(runs: Runs):
    """(rows, fit groups, exit code) of ``rdusim validate``, run once."""
    if not hasattr(runs, "_validate"):
        from rdusim.validate import default_reference_files, fit_groups_for, validation_rows
        import io
        rows = validation_rows(default_reference_files(), stream=io.StringIO())
        runs._validate = (rows, fit_groups_for(rows), 0 if all(r.passed for r in rows) else 1)
    return runs._validate


@figure("validate.summary")
def validate_summary(runs: Runs) -> str:
    from rdusim.validate_table import fits_summary, role_summary
    rows, groups, _ = _validate(runs)
    lines = [f"{role}: {role_summary([r for r in rows if r.role == role])}" for role in ("calibration", "validation")]
    return fence("\n".join(lines + [fits_summary(groups)]))


@figure("validate.fits")
def validate_fits(runs: Runs) -> str:
    from rdusim.validate_fits import compact_ids
    _, groups, _ = _validate(runs)
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
    rows, _, _ = _validate(runs)
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
    rows, _, _ = _validate(runs)
    for r in rows:
        if r.id == ref_id:
            return r
    raise KeyError(f"no reference {ref_id}")


@figure("validate.nemo_max_error")
def validate_nemo_max_error(runs: Runs) -> str:
    rows, _, _ = _validate(runs)
    return f"{max(abs(r.error) for r in rows if r.id.startswith('nemo.')):.1%}"


@figure("validate.coe_bs8_error")
def validate_coe_bs8_error(runs: Runs) -> str:
    r = _row(runs, "sn40l-paper.table2.h100.bs8.tok20.overall")
    return f"{r.error:+.1%}, {'pass' if r.passed else 'miss'}"


# ---- serving under load: rdusim run workloads/serve_*.yaml

def _rates(workload: str) -> list[float]:
    from rdusim.config.workload import REPO_ROOT
    from rdusim.config.yamlio import load_yaml
    return [float(r) for r in load_yaml(REPO_ROOT / "workloads" / workload)["rates_per_s"]]


def _loads(m: Mapping[str, Any], p: str, mode: str, rates: list[float], key: str) -> list[float]:
    return [m[f"serve.{p}.{mode}.load{i}.{key}"] for i in range(len(rates))]


def _num(x: float) -> str:
    return f"{x:g}"


@figure("serve.ttft_knee")
def serve_ttft_knee(runs: Runs) -> str:
    """The highest swept rate up to which every platform keeps p99 TTFT under 100 ms, and the
    worst p99 TTFT up to it."""
    m, rates = runs.metrics(SERVE), _rates("serve_llama2_7b.yaml")
    p99 = {p: _loads(m, p, "continuous", rates, "ttft.p99_s") for p in PLATFORMS}
    knee = 0
    while knee < len(rates) and all(p99[p][knee] < 0.1 for p in PLATFORMS):
        knee += 1
    if knee == 0:
        return "over 100 ms from the lowest rate on"
    worst = max(p99[p][i] for p in PLATFORMS for i in range(knee))
    return f"under {math.ceil(worst * 100) * 10} ms up to {_num(rates[knee - 1])} req/s"


@figure("serve.flat")
def serve_flat(runs: Runs) -> str:
    m, rates = runs.metrics(SERVE), _rates("serve_llama2_7b.yaml")
    peak = {p: max(_loads(m, p, "continuous", rates, "requests_per_s")) for p in PLATFORMS}
    a, h, s = (f"{peak[p]:.0f}" for p in ("dgx_a100", "dgx_h100", "sn40l"))
    return f"about {a} (A100), {h} (H100) and {s} (SN40L) req/s"


@figure("serve.capacity")
def serve_capacity(runs: Runs) -> str:
    m = runs.metrics(SERVE)
    return " / ".join(f"{m[f'serve.{p}.continuous.capacity.max_rate_per_s']:.1f}" for p in PLATFORMS)


@figure("serve.static")
def serve_static(runs: Runs) -> str:
    m, rates = runs.metrics(SERVE), _rates("serve_llama2_7b.yaml")
    static = {p: max(_loads(m, p, "static", rates, "requests_per_s")) for p in PLATFORMS}
    cont = {p: max(_loads(m, p, "continuous", rates, "requests_per_s")) for p in PLATFORMS}
    ratio = [cont[p] / static[p] for p in PLATFORMS]
    return (f"{min(static.values()):.0f}-{max(static.values()):.0f} req/s: continuous batching serves "
            f"{min(ratio):.0f}-{max(ratio):.0f}x more")


@figure("serve.kv_max")
def serve_kv_max(runs: Runs) -> str:
    m, rates = runs.metrics(SERVE), _rates("serve_llama2_7b.yaml")
    most = max(v for p in PLATFORMS for mode in ("continuous", "static")
               for v in _loads(m, p, mode, rates, "kv_occupancy.max"))
    return f"{math.ceil(most * 100)}%"


@figure("serve_coe.miss")
def serve_coe_miss(runs: Runs) -> str:
    m = runs.metrics(SERVE_COE)
    misses = [1 - m[f"serve.{p}.coe.hit_rate"] for p in PLATFORMS]
    return f"{5 * round(20 * sum(misses) / len(misses)):.0f}%"


@figure("serve_coe.ttft_low")
def serve_coe_ttft_low(runs: Runs) -> str:
    m, rates = runs.metrics(SERVE_COE), _rates("serve_coe150.yaml")
    p99 = {p: _loads(m, p, "coe", rates, "ttft.p99_s")[0] for p in PLATFORMS}
    return (f"at {_num(rates[0])} req/s p99 TTFT is {p99['sn40l']:.1f} s on the SN40L against "
            f"{p99['dgx_h100']:.1f} s (H100) and {p99['dgx_a100']:.1f} s (A100)")


@figure("serve_coe.capacity")
def serve_coe_capacity(runs: Runs) -> str:
    m = runs.metrics(SERVE_COE)
    return " / ".join(f"{m[f'serve.{p}.coe.capacity.max_rate_per_s']:.2f}" for p in PLATFORMS)


@figure("validate.n_calibration")
def validate_n_calibration(runs: Runs) -> str:
    rows, _, _ = _validate(runs)
    return str(sum(r.role == "calibration" for r in rows))


@figure("validate.n_calibration_ranges")
def validate_n_calibration_ranges(runs: Runs) -> str:
    rows, _, _ = _validate(runs)
    return str(sum(r.role == "calibration" and r.is_range for r in rows))


@figure("validate.n_zero_dof")
def validate_n_zero_dof(runs: Runs) -> str:
    _, groups, _ = _validate(runs)
    return str(sum(g.points for g in groups if g.dof <= 0))


@figure("validate.nemo_dof")
def validate_nemo_dof(runs: Runs) -> str:
    return str(_row(runs, "nemo.llama2-7b.h100.tp1.bs1").dof)


def _spread(runs: Runs, suffix: str) -> str:
    rows, _, _ = _validate(runs)
    got = [r.simulated for r in rows if r.id.startswith("sn40l-paper.fig6.") and r.id.endswith(suffix)
           and "decode" in r.id and r.simulated is not None]
    return f"{min(got):.1f}-{max(got):.1f}x"


@figure("validate.decode_fusion_range")
def validate_decode_fusion_range(runs: Runs) -> str:
    return _spread(runs, "_decode.fusion")


@figure("validate.decode_ho_range")
def validate_decode_ho_range(runs: Runs) -> str:
    return _spread(runs, "_decode.ho")


# ---- over nodes: rdusim run workloads/llama3_70b_*two_nodes.yaml, coe150_two_nodes.yaml

PP = "rdusim run workloads/llama3_70b_two_nodes.yaml"
TP16 = "rdusim run workloads/llama3_70b_tp16_two_nodes.yaml"
COE2 = "rdusim run workloads/coe150_two_nodes.yaml"
COE2_ONE_NODE = "rdusim run workloads/coe150_two_nodes.yaml --set clusters={}"


def _ms0(seconds: float) -> str:
    return f"{seconds * 1e3:.0f}"


def _one_vs_two(m: Mapping[str, Any], p: str, key: str) -> tuple[float, float]:
    return m[f"model.{p}.{key}"], m[f"model.{p}_x2.pp.{key}"]


@figure("two_nodes.ttft")
def two_nodes_ttft(runs: Runs) -> str:
    m = runs.metrics(PP)
    (s1, s2), (h1, h2) = _one_vs_two(m, "sn40l", "ttft_s"), _one_vs_two(m, "dgx_h100", "ttft_s")
    return f"from {_ms0(s1)} to {_ms0(s2)} ms (SN40L) and {_ms0(h1)} to {_ms0(h2)} ms (H100)"


@figure("tp16.tpot")
def tp16_tpot(runs: Runs) -> str:
    m = runs.metrics(TP16)
    (s1, s2), (h1, h2) = _one_vs_two(m, "sn40l", "tpot_s"), _one_vs_two(m, "dgx_h100", "tpot_s")
    return f"from {s1 * 1e3:.1f} to {s2 * 1e3:.1f} ms (SN40L) and from {h1 * 1e3:.1f} to {h2 * 1e3:.1f} ms (DGX H100)"


@figure("tp16.network")
def tp16_network(runs: Runs) -> str:
    m = runs.metrics(TP16)
    net = [m[f"model.{p}_x2.pp.allreduce_inter_s"] for p in ("sn40l", "dgx_h100")]
    return f"about {sum(net) / len(net) * 1e6:.1f} us"


def _tp16_ttft(runs: Runs, p: str, up: str, down: str) -> str:
    one, two = _one_vs_two(runs.metrics(TP16), p, "ttft_s")
    return f"{up if two > one else down} from {_ms0(one)} to {_ms0(two)} ms"


@figure("tp16.ttft_sn40l")
def tp16_ttft_sn40l(runs: Runs) -> str:
    return _tp16_ttft(runs, "sn40l", "rises", "falls")


@figure("tp16.ttft_h100")
def tp16_ttft_h100(runs: Runs) -> str:
    return _tp16_ttft(runs, "dgx_h100", "raises it", "lowers it")


@figure("coe2.router")
def coe2_router(runs: Runs) -> str:
    m = runs.metrics(COE2)
    got = [v for k, v in m.items() if k.endswith(".router_network_s") and ".experts" not in k]
    return f"about {sum(got) / len(got) * 1e6:.0f} us"


@figure("coe2.batch8")
def coe2_batch8(runs: Runs) -> str:
    one, two = runs.metrics(COE2_ONE_NODE), runs.metrics(COE2)
    key = "bs8.tok20.latency_s"
    s = f"{_ms0(one[f'coe.sn40l.{key}'])} -> {_ms0(two[f'coe.sn40l.{key}'])} ms (SN40L)"
    return s + f" and {_ms0(one[f'coe.dgx_h100.{key}'])} -> {_ms0(two[f'coe.dgx_h100.{key}'])} ms"


@figure("coe2.footprint")
def coe2_footprint(runs: Runs) -> str:
    m = runs.metrics(COE2)

    def n(p: str, k: int) -> int:
        return int(m[f"coe.footprint.{p}.nodes_for{k}"])

    return (f"{n('sn40l', 150)} SN40L node against {n('dgx_h100', 150)} DGX H100 nodes for 150 experts, "
            f"{n('sn40l', 500)} against {n('dgx_h100', 500)} for 500")


# ---- speculative decoding: points of the sweep workloads/whatif_speculative.yaml

SPEC = "rdusim run workloads/llama3_70b_speculative.yaml --set speculative.acceptance={p} --set speculative.lookahead={k}"


def _lookaheads() -> list[int]:
    from rdusim.config.workload import REPO_ROOT
    from rdusim.config.yamlio import load_yaml
    return [int(k) for k in load_yaml(REPO_ROOT / "workloads" / "whatif_speculative.yaml")["sweep"]["grid"]
            ["speculative.lookahead"]]


def _spec(runs: Runs, p: float, k: int) -> Mapping[str, Any]:
    return runs.metrics(SPEC.format(p=p, k=k))


@figure("spec.best")
def spec_best(runs: Runs) -> str:
    """At acceptance 0.7: the lookahead with the highest speedup per platform, and that speedup."""
    ks = _lookaheads()
    best = {p: max(ks, key=lambda k: _spec(runs, 0.7, k)[f"model.{p}.spec.speedup"]) for p in ("sn40l", "dgx_h100")}
    m = _spec(runs, 0.7, best["sn40l"])
    sn = (f"{m['model.sn40l.spec.speedup']:.2f}x on the SN40L ({m['model.sn40l.spec.decode_tokens_per_s']:.0f} vs "
          f"{m['model.sn40l.spec.plain_decode_tokens_per_s']:.0f} tokens/s per user)")
    h = _spec(runs, 0.7, best["dgx_h100"])["model.dgx_h100.spec.speedup"]
    if best["sn40l"] == best["dgx_h100"]:
        return f"the best lookahead is k = {best['sn40l']}: {sn}, {h:.2f}x on the DGX H100"
    return f"the best lookahead is k = {best['sn40l']} on the SN40L: {sn}; k = {best['dgx_h100']}, {h:.2f}x on the DGX H100"


@figure("spec.p0")
def spec_p0(runs: Runs) -> str:
    worst = min(_spec(runs, 0.0, k)[f"model.{p}.spec.speedup"] for k in _lookaheads() for p in ("sn40l", "dgx_h100"))
    return f"up to {1 / worst:.1f}x"
