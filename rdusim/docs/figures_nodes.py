"""The documented what-if figures (README "What-if studies"): ``rdusim run`` of the two-node
workloads and of points of the sweeps ``workloads/whatif_speculative.yaml`` and
``workloads/whatif_formats.yaml``."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from rdusim.docs.figure_base import figure
from rdusim.docs.runs import Runs
from rdusim.config.workload import REPO_ROOT
from rdusim.config.yamlio import load_yaml


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
    sn = f"{m['model.sn40l.spec.speedup']:.2f}x"
    per_user = (f"({m['model.sn40l.spec.decode_tokens_per_s']:.0f} vs "
                f"{m['model.sn40l.spec.plain_decode_tokens_per_s']:.0f} tokens/s per user)")
    h = f"{_spec(runs, 0.7, best['dgx_h100'])['model.dgx_h100.spec.speedup']:.2f}x"
    if best["sn40l"] == best["dgx_h100"]:
        return f"the best lookahead is k = {best['sn40l']}: {sn} on the SN40L {per_user} and {h} on the DGX H100"
    return (f"the best lookahead is k = {best['sn40l']} on the SN40L: {sn} {per_user}, and k = {best['dgx_h100']} "
            f"on the DGX H100: {h}")


@figure("spec.p0")
def spec_p0(runs: Runs) -> str:
    """At acceptance 0: how much dearer the draft makes a token, at the worst lookahead."""
    worst = {p: min(_lookaheads(), key=lambda k: _spec(runs, 0.0, k)[f"model.{p}.spec.speedup"])
             for p in ("sn40l", "dgx_h100")}
    cost = {p: 1 / _spec(runs, 0.0, k)[f"model.{p}.spec.speedup"] for p, k in worst.items()}
    if worst["sn40l"] == worst["dgx_h100"]:
        return (f"(k = {worst['sn40l']}) the draft makes a token {cost['sn40l']:.1f}x (SN40L) and "
                f"{cost['dgx_h100']:.1f}x (H100) dearer")
    return (f"the draft makes a token up to {cost['sn40l']:.1f}x (SN40L, k = {worst['sn40l']}) and "
            f"{cost['dgx_h100']:.1f}x (H100, k = {worst['dgx_h100']}) dearer")


# ---- number formats: points of the sweep workloads/whatif_formats.yaml (150 experts)

FORMATS = ("rdusim run workloads/coe150.yaml --set sweep_experts=[] --set output_tokens=[20] "
           "--set batch_sizes=[1,8] --set experts.formats.weight.group_size=128 "
           "--set experts.formats.native_compute=true --set experts.formats.weight.dtype={dtype}")


def _fmt(runs: Runs, dtype: str) -> Mapping[str, Any]:
    return runs.metrics(FORMATS.format(dtype=dtype))


def _pair(runs: Runs, dtype: str, key: str, fmt: str) -> str:
    m = _fmt(runs, dtype)
    return "/".join(fmt.format(m[key.format(p=p)]) for p in ("sn40l", "dgx_h100"))


def _by_format(runs: Runs, render: Callable[[str], str]) -> str:
    """``<fp8> and <int4>``, or ``<fp8> (FP8), <int8> (INT8) and <int4>`` when FP8 and INT8 differ."""
    fp8, int8, int4 = (render(d) for d in ("fp8_e4m3", "int8", "int4"))
    return f"{fp8} and {int4}" if fp8 == int8 else f"{fp8} (FP8), {int8} (INT8) and {int4}"


@figure("formats.bytes")
def formats_bytes(runs: Runs) -> str:
    def ratio(dtype: str) -> str:
        return f"{_fmt(runs, dtype)['coe.sn40l.expert_bytes'] / _fmt(runs, 'bf16')['coe.sn40l.expert_bytes']:.2f}x"
    if ratio("fp8_e4m3") != ratio("int8"):
        raise KeyError("FP8 and INT8 experts differ in size: rewrite the sentence")
    return f"{ratio('fp8_e4m3')} per whole Llama-2-7B expert, embeddings and head stay bf16), INT4 g128 {ratio('int4')}"


@figure("formats.slots")
def formats_slots(runs: Runs) -> str:
    key = "coe.capacity.{p}.hbm_experts"
    return f"from {_pair(runs, 'bf16', key, '{:.0f}')} (SN40L/DGX) to " + \
        _by_format(runs, lambda d: _pair(runs, d, key, "{:.0f}"))


def _switch_ms(runs: Runs, dtype: str) -> str:
    m = _fmt(runs, dtype)
    return "/".join(f"{m[f'coe.{p}.lone_switch_s'] * 1e3:.1f}" for p in ("sn40l", "dgx_h100"))


@figure("formats.switch")
def formats_switch(runs: Runs) -> str:
    return f"from {_switch_ms(runs, 'bf16')} ms to " + _by_format(runs, lambda d: _switch_ms(runs, d)) + " ms"


@figure("formats.lead")
def formats_lead(runs: Runs) -> str:
    key = "coe.speedup.sn40l_vs_dgx_h100.bs8.tok20.overall"

    def lead(dtype: str) -> str:
        return f"{_fmt(runs, dtype)[key]:.2f}x"
    fp8, int8, int4 = lead("fp8_e4m3"), lead("int8"), lead("int4")
    mid = f"{fp8} (FP8/INT8)" if fp8 == int8 else f"{fp8} (FP8), {int8} (INT8)"
    return f"from {lead('bf16')} to {mid} and {int4} (INT4)"
