"""The README's P2P sensitivity paragraph: how the headline results move with the SN40L's
assumed P2P links (latency and bandwidth at 0.5x / 2x, a 2-port ring instead of a full mesh),
the CoE release's fitted terms held fixed. One definition of the cases for the figures and
for ``benchmarks/p2p_sensitivity.py`` (which prints every scenario and model)."""

from __future__ import annotations

from typing import Any, Mapping

from rdusim.config.arch import load_arch
from rdusim.config.workload import REPO_ROOT
from rdusim.docs.figure_base import figure
from rdusim.docs.runs import Runs

COE = "workloads/coe150.yaml"
FUSION = "workloads/fusion_suite.yaml"
SPEEDUP = "coe.speedup.sn40l_vs_dgx_h100"
LATENCY, BANDWIDTH, RING = "latency_s", "bandwidth_bytes_per_s", "ring"


def cases() -> dict[str, list[tuple[str, Any]]]:
    """Case name -> the ``--set`` overrides it runs with ("" is the SN40L as shipped)."""
    p2p = load_arch(REPO_ROOT / "arch" / "sn40l.yaml").links.p2p
    out: dict[str, list[tuple[str, Any]]] = {"": []}
    for key, base in ((LATENCY, p2p.latency_s), (BANDWIDTH, p2p.bandwidth_bytes_per_s)):
        for f in (0.5, 2.0):
            out[f"{key} x{f:g}"] = [(f"arch.sn40l.links.p2p.{key}", base * f)]
    out[RING] = [("arch.sn40l.links.p2p.topology", "ring"), ("arch.sn40l.links.p2p.ports", 2)]
    return out


def command(workload: str, sets: list[tuple[str, Any]]) -> str:
    """The ``rdusim run`` command of a case."""
    return f"rdusim run {workload}" + "".join(
        f" --set {k}={v:.6e}" if isinstance(v, float) else f" --set {k}={v}" for k, v in sets)


def _metrics(runs: Runs, workload: str, case: str) -> Mapping[str, Any]:
    return runs.metrics(command(workload, runs.memo("p2p.cases", cases)[case]))


def _x(v: float) -> str:
    return f"{v:.2f}x"


def _coe(runs: Runs, case: str, scenario: str, part: str) -> float:
    return _metrics(runs, COE, case)[f"{SPEEDUP}.{scenario}.{part}"]


def _moves(runs: Runs, key: str, scenario: str, part: str, shipped: bool) -> str:
    """``a -> b / c``: as shipped, then at 0.5x and 2x of ``key`` (without ``a ->`` unless ``shipped``)."""
    half, double = (_x(_coe(runs, f"{key} x{f:g}", scenario, part)) for f in (0.5, 2.0))
    return (f"{_x(_coe(runs, '', scenario, part))} -> " if shipped else "") + f"{half} / {double}"


# figure -> (the P2P parameter scaled, scenario, speedup part, whether "as shipped ->" leads)
MOVES = {"p2p.latency_bs1_expert": (LATENCY, "bs1.tok20", "expert", True),
         "p2p.latency_bs8_overall": (LATENCY, "bs8.tok20", "overall", True),
         "p2p.bandwidth_bs1_expert": (BANDWIDTH, "bs1.tok20", "expert", False),
         "p2p.bandwidth_bs8_overall": (BANDWIDTH, "bs8.tok20", "overall", False)}


def _register(name: str, args: tuple) -> None:
    figure(name)(lambda runs: _moves(runs, *args))


for _name, _args in MOVES.items():
    _register(_name, _args)


@figure("p2p.ring")
def ring(runs: Runs) -> str:
    return f"{_x(_coe(runs, RING, 'bs1.tok20', 'expert'))} (overall {_x(_coe(runs, RING, 'bs8.tok20', 'overall'))})"


def _decode(runs: Runs, case: str, speedup: str) -> float:
    return _metrics(runs, FUSION, case)[f"fusion.llama2_7b_4k_decode.speedup.{speedup}"]


@figure("p2p.fused_7b")
def fused_7b(runs: Runs) -> str:
    """Fused SO over unfused 7B decode across the link-number cases (the ring apart)."""
    got = [_decode(runs, c, "fused_so_vs_unfused") for c in runs.memo("p2p.cases", cases) if c != RING]
    return f"{min(got):.2f}-{max(got):.2f}x"


@figure("p2p.ho_7b")
def ho_7b(runs: Runs) -> str:
    """HO over SO on 7B decode: as shipped, then at 0.5x / 2x of the latency."""
    half, double = (_x(_decode(runs, f"{LATENCY} x{f:g}", "fused_ho_vs_fused_so")) for f in (0.5, 2.0))
    return f"{_x(_decode(runs, '', 'fused_ho_vs_fused_so'))} to {half} / {double}"


@figure("p2p.ho_7b_ring")
def ho_7b_ring(runs: Runs) -> str:
    return _x(_decode(runs, RING, "fused_ho_vs_fused_so"))
