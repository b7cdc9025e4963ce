"""How the headline results move with the SN40L's assumed P2P links (latency, bandwidth at 0.5x / 2x).

    python benchmarks/p2p_sensitivity.py

Runs workloads/coe150.yaml (Table-2 speedups of the SN40L over the DGX H100) and
workloads/fusion_suite.yaml (decode fusion speedups: fused SO over unfused, HO over SO)
with ``arch.sn40l.links.p2p.latency_s`` and ``.bandwidth_bytes_per_s`` scaled, one at a
time, and with a ring instead of a full mesh (the cases: rdusim/docs/figures_p2p.py, whose
figures put this table's numbers into the README). The P2P link parameters are declared
assumptions (arch/sn40l.yaml); nothing here is fitted.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rdusim.config.arch import load_arch  # noqa: E402
from rdusim.config.workload import load_workload  # noqa: E402
from rdusim.docs.figures_p2p import cases as p2p_cases  # noqa: E402
from rdusim.studies import run_study  # noqa: E402

SCENARIOS = ("bs1.tok20", "bs1.tok200", "bs8.tok20", "bs8.tok200")
DECODE = ("llama2_7b_4k_decode", "llama2_70b_4k_decode", "bloom_176b_8k_decode", "mistral_7b_4k_decode",
          "falcon_40b_2k_decode")


def run(workload: str, sets: list[tuple[str, object]]) -> dict:
    loaded = load_workload(ROOT / workload, sets)
    return dict(run_study(loaded).metrics)


def main() -> None:
    p2p = load_arch(ROOT / "arch" / "sn40l.yaml").links.p2p
    cases = [(name or "as shipped", sets) for name, sets in p2p_cases().items()]
    head = " ".join(f"{s:>15}" for s in SCENARIOS)
    print(f"SN40L P2P as shipped: {p2p.bandwidth_bytes_per_s / 1e9:.0f} GB/s per socket, "
          f"{p2p.latency_s * 1e6:.1f} us a step, {p2p.ports} ports, {p2p.topology.value}")
    print(f"\nTable-2 speedup vs dgx_h100, overall | expert-only\n{'case':<26} {head}")
    for name, sets in cases:
        m = run("workloads/coe150.yaml", sets)
        k = "coe.speedup.sn40l_vs_dgx_h100"
        cells = " ".join(f"{m[f'{k}.{s}.overall']:>6.2f}|{m[f'{k}.{s}.expert']:>5.2f}x " for s in SCENARIOS)
        print(f"{name:<26} {cells}")
    print(f"\nSN40L decode: fusion speedup (fused SO over unfused) | HO over SO (Fig. 6)\n{'case':<26} "
          + " ".join(f"{d[:-10]:>14}" for d in DECODE))
    for name, sets in cases:
        m = run("workloads/fusion_suite.yaml", sets)
        print(f"{name:<26} " + " ".join(f"{m[f'fusion.{d}.speedup.fused_so_vs_unfused']:>7.2f}|"
                                         f"{m[f'fusion.{d}.speedup.fused_ho_vs_fused_so']:>5.2f}x" for d in DECODE))


if __name__ == "__main__":
    main()
