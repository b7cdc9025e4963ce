"""The documented cost and energy figures (README "Prices and energy"), from the model run,
coe150, serve_llama2_7b, the fine-tuning study and ``rdusim arch show``."""

from __future__ import annotations

import glob
import json
from pathlib import Path

from rdusim.docs.figure_base import CHAT, COE, fence, figure
from rdusim.docs.figures_serve import SERVE, _rates
from rdusim.docs.runs import Runs, section
from rdusim.config.workload import REPO_ROOT

FINETUNE = "rdusim run workloads/finetune_mixtral_qlora.yaml"
GPUS = ("a40", "a100_40gb", "a100_80gb", "h100")


def _arch(runs: Runs, name: str) -> dict:
    return json.loads(runs.output(f"rdusim arch show arch/{name}.yaml --json"))["derived"]


@figure("cost.chat")
def cost_chat(runs: Runs) -> str:
    return fence(section(runs.output(CHAT), "platform         J/token"))


@figure("cost.scale_range")
def cost_scale_range(runs: Runs) -> str:
    names = sorted(Path(p).stem for p in glob.glob(str(REPO_ROOT / "arch" / "*.yaml")))
    got = [_arch(runs, n)["power.scale"] for n in names]
    return f"{min(got):.1f}-{max(got):.1f}"


@figure("cost.h100_model")
def cost_h100_model(runs: Runs) -> str:
    d = _arch(runs, "dgx_h100")
    return (f"scale {d['power.scale']:.2f}; {d['power.bf16_pj_per_flop_scaled']:.2f} pJ per bf16 FLOP, "
            f"{d['power.hbm_pj_per_byte_scaled']:.1f} pJ per HBM byte after scaling")


def _coe(runs: Runs, p: str, metric: str) -> list[float]:
    m = runs.metrics(COE)
    return [m[f"coe.{p}.bs{b}.tok{t}.{metric}"] for b in (1, 8) for t in (20, 200)]


@figure("cost.coe_dollars")
def cost_coe_dollars(runs: Runs) -> str:
    h = _coe(runs, "dgx_h100", "cost_usd")
    hm, am = _coe(runs, "dgx_h100", "usd_per_mtoken"), _coe(runs, "dgx_a100", "usd_per_mtoken")
    return (f"a CoE batch costs ${h[0]:.4f} (bs1, 20 tokens) to ${h[3]:.3f} (bs8, 200 tokens) on a DGX "
            f"H100 node, ${min(hm):.0f}-{max(hm):.0f} per million tokens; on the DGX A100 "
            f"${min(am):.0f}-{max(am):.0f}")


@figure("cost.coe_joules")
def cost_coe_joules(runs: Runs) -> str:
    s, h, a = (_coe(runs, p, "energy_j_per_token") for p in ("sn40l", "dgx_h100", "dgx_a100"))
    return (f"{min(s):.1f}-{max(s):.1f} J on the SN40L node against {min(h):.1f}-{max(h):.1f} J on the DGX "
            f"H100 and {min(a):.1f}-{max(a):.1f} J on the DGX A100")


@figure("cost.serve")
def cost_serve(runs: Runs) -> str:
    m, rates = runs.metrics(SERVE), _rates("serve_llama2_7b.yaml")
    lo, hi = 0, len(rates) - 1
    k = lambda p, i, key: m[f"serve.{p}.continuous.load{i}.{key}"]      # noqa: E731
    return (f"$/Mtoken falls from {k('dgx_h100', lo, 'usd_per_mtoken'):.1f} at {rates[lo]:g} req/s to "
            f"{k('dgx_h100', hi, 'usd_per_mtoken'):.2f} at {rates[hi]:g} req/s and its energy from "
            f"{k('dgx_h100', lo, 'energy_j_per_token'):.1f} to {k('dgx_h100', hi, 'energy_j_per_token'):.2f} "
            f"J/token ({k('dgx_h100', lo, 'power_w_per_device'):.0f} -> "
            f"{k('dgx_h100', hi, 'power_w_per_device'):.0f} W per GPU)")


@figure("cost.serve_capacity")
def cost_serve_capacity(runs: Runs) -> str:
    m = runs.metrics(SERVE)
    c = lambda p, key: m[f"serve.{p}.continuous.capacity.{key}"]      # noqa: E731
    return (f"${c('dgx_h100', 'usd_per_mtoken'):.2f}/M on the H100 ({c('dgx_h100', 'max_rate_per_s'):.1f} req/s) "
            f"and ${c('dgx_a100', 'usd_per_mtoken'):.2f}/M on the A100 ({c('dgx_a100', 'max_rate_per_s'):.1f} req/s)")


@figure("cost.finetune")
def cost_finetune(runs: Runs) -> str:
    m = runs.metrics(FINETUNE)
    at = lambda p, key: m[f"finetune.{p}.short.sparse.{key}"]      # noqa: E731
    others = [at(p, "job_usd") for p in GPUS if p != "h100"]
    speed = [at("h100", "queries_per_s") / at(p, "queries_per_s") for p in GPUS if p != "h100"]
    return (f"${at('h100', 'job_usd'):.2f} against ${min(others):.2f}-{max(others):.2f}: it trains "
            f"{min(speed):.1f}-{max(speed):.1f}x more queries a second")


@figure("cost.finetune_kwh")
def cost_finetune_kwh(runs: Runs) -> str:
    m = runs.metrics(FINETUNE)
    kwh = lambda p: m[f"finetune.{p}.short.sparse.job_energy_j"] / 3.6e6      # noqa: E731
    return f"{kwh('sn40l'):.2f} kWh a job (8 sockets at an assumed 600 W TDP) against the H100's {kwh('h100'):.2f}"
