"""8-GPU NCCL all-reduce on DGX H100 / A100: simulated vs measured (references/nccl.yaml).

    python benchmarks/nccl_allreduce.py          # the table with the arch files as they are
    python benchmarks/nccl_allreduce.py --fit    # redo the one-time fit, print the values

Measured (microsoft/vidur public profiling data, bf16, 8 GPUs of one node, brief section 4):
4 KB to 2 MB in 20-40 us (H100) / 25-60 us (A100); 8 MB 51 / 99 us; 32 MB 115 / 275 us.

The fit, per machine and only on that machine's points: the step latency of a hop over
NVLink + NVSwitch is an assumption in the arch file; the two unknowns, the NVLink
efficiency (achievable fraction of the per-GPU NVLink bandwidth) and the fixed cost of
the algorithm NCCL picks at 8 and 32 MB (NVLS on the H100: ``switch_reduce_latency_s``;
tree/ring on the A100: ``base_latency_s``), are solved from the two exact points. The
H100's ring/tree fixed cost (small messages) is fitted with the NeMo table instead
(benchmarks/nemo_h100_table.py), held inside the measured 4 KB-2 MB range; the A100's
4 KB-2 MB range is a prediction. Message sizes are binary (1 MB = 2^20 bytes).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rdusim.config.arch import load_arch  # noqa: E402
from rdusim.config.yamlio import load_yaml  # noqa: E402
from rdusim.engine.collectives import CollectiveOp, collective_cost  # noqa: E402

MIB = 2 ** 20
RANKS = 8
SMALL = (4096, 65536, MIB, 2 * MIB)
HIDDEN = 4096     # Llama-2-7B hidden size


def measured() -> dict[str, dict]:
    """{arch name: {"points": {bytes: seconds}, "small_range_s": (lo, hi)}} from references/nccl.yaml:
    the calibration references are the exact points (a Llama-2-7B TP8 prefill all-reduce carries
    prompt x 4096 x 2 bytes), the validation ones the small-message range (their published ``range``)."""
    out: dict[str, dict] = {}
    for r in load_yaml(ROOT / "references" / "nccl.yaml")["references"]:
        name = r["metric"].split(".")[1]
        m = out.setdefault(name, {"points": {}, "small_range_s": None})
        if "range" in r:
            m["small_range_s"] = (float(r["range"][0]), float(r["range"][1]))
        elif r.get("role") == "calibration":
            m["points"][int(r["set"]["prompt_tokens"]) * HIDDEN * 2] = float(r["expected"])
    return out


def allreduce_s(arch, nbytes: float) -> tuple[float, str]:
    c = collective_cost(CollectiveOp.ALLREDUCE, RANKS, nbytes, arch.links.nvlink, arch.collectives)
    return c.time_s, c.algorithm.value


def fixed_key(arch) -> str:
    """The fixed cost the 8/32 MB points pin: NVLS's where the switch reduces (NCCL picks it
    for large messages there), else the ring/tree kernels'."""
    return "switch_reduce_latency_s" if arch.links.nvlink.in_network_reduction else "base_latency_s"


def with_params(arch, efficiency: float, base_s: float):
    return dataclasses.replace(arch, links=dataclasses.replace(
        arch.links, nvlink=dataclasses.replace(arch.links.nvlink, efficiency=efficiency)),
        collectives=dataclasses.replace(arch.collectives, **{fixed_key(arch): base_s}))


def fit(arch, points: dict[int, float]) -> tuple[float, float]:
    """Efficiency and base latency that put the two exact points on the model (bisection on
    the efficiency; the base latency is additive, so for each efficiency it follows from
    the smaller point exactly)."""
    (m1, t1), (m2, t2) = sorted(points.items())

    def base_for(eff: float) -> float:
        a = with_params(arch, eff, 0.0)
        return t1 - allreduce_s(a, m1)[0]

    def residual(eff: float) -> float:
        a = with_params(arch, eff, base_for(eff))
        return allreduce_s(a, m2)[0] - t2

    lo, hi = 0.05, 1.0
    if residual(hi) > 0:
        raise SystemExit(f"{arch.name}: even at 100% of the link the model is slower than {t2 * 1e6:.0f} us "
                         f"at {m2 / MIB:.0f} MB")
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if residual(mid) > 0 else (lo, mid)
    eff = (lo + hi) / 2
    return eff, base_for(eff)


def table(arch, meas: dict) -> list[str]:
    lo, hi = meas["small_range_s"]
    rows = [f"{arch.name}: nvlink {arch.links.nvlink.bandwidth_bytes_per_s / 1e9:.0f} GB/s x "
            f"{arch.links.nvlink.efficiency:.3f}, step {arch.links.nvlink.latency_s * 1e6:.2f} us, "
            f"base {arch.collectives.base_latency_s * 1e6:.2f} us, "
            f"NVLS fixed {(arch.collectives.switch_reduce_latency_s or 0) * 1e6:.2f} us, "
            f"in-network reduction {arch.links.nvlink.in_network_reduction}",
            f"  {'message':>10} {'algorithm':>14} {'simulated us':>13} {'measured us':>12} {'error':>8}"]
    for nbytes in SMALL:
        t, alg = allreduce_s(arch, nbytes)
        ok = "in range" if lo <= t <= hi else "OUT OF RANGE"
        rng = f"{lo * 1e6:.0f}-{hi * 1e6:.0f}"
        rows.append(f"  {nbytes / 1024:>8.0f}KB {alg:>14} {t * 1e6:>13.1f} {rng:>12} {ok:>8}")
    for nbytes, want in sorted(meas["points"].items()):
        t, alg = allreduce_s(arch, nbytes)
        rows.append(f"  {nbytes / MIB:>8.0f}MB {alg:>14} {t * 1e6:>13.1f} {want * 1e6:>12.1f} {t / want - 1:>+8.1%}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fit", action="store_true", help="solve efficiency and base latency per machine")
    args = ap.parse_args()
    meas = measured()
    for name in ("dgx_h100", "dgx_a100"):
        arch = load_arch(ROOT / "arch" / f"{name}.yaml")
        if args.fit:
            eff, base = fit(arch, meas[name]["points"])
            print(f"{name}: links.nvlink.efficiency = {eff:.4f}, collectives.{fixed_key(arch)} = {base:.4e}")
            arch = with_params(arch, eff, base)
        print("\n".join(table(arch, meas[name])))


if __name__ == "__main__":
    main()
