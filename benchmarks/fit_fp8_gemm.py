"""FP8 GEMM efficiency of the H100 (``kernel.tensor_fp8_efficiency``): fitted to a published
FP8 GEMM throughput measurement, through the model's own GEMM timing.

    python benchmarks/fit_fp8_gemm.py          # the table with the arch file as it is
    python benchmarks/fit_fp8_gemm.py --fit    # redo the one-time fit, print the value

Measured: DeepGEMM v1.0.0 README (deepseek-ai, Feb 2025; the README of the ``deep-gemm``
1.0.0 package), "Normal GEMMs for dense models", FP8 (e4m3) operands with BF16 output, on an
H800 SXM5 (the H100 SXM5's compute die: 132 SMs, 1,979 dense FP8 TFLOPS, 3.35 TB/s; only its
NVLink and FP64 are cut), NVCC 12.8. DeepGEMM scales operands per 1x128 / 128x128 block and
promotes the accumulation on the CUDA cores, so a per-tensor-scaled FP8 GEMM (cuBLASLt, what
TensorRT-LLM's FP8 checkpoints run) is at least as fast: the fit is a lower bound on it.

The one unknown is the fraction of the FP8 peak a large-tile, full-wave GEMM reaches; the
model adds wave quantisation, tile sizes and the HBM roofline (rdusim.engine.gpu.kernels).
It is fitted on the compute-bound points (M = 4096, K >= 7168: at least 2 FLOP per byte
more than the ridge), by least squares on log time (one parameter: the geometric mean of
each point's implied efficiency). The other points (skinny M = 64/128, short K) are left
as a check: the table prints model vs measured for every row.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rdusim.config.arch import load_arch  # noqa: E402
from rdusim.engine.gpu.kernels import GemmShape, KernelClass, KernelWork, kernel_time  # noqa: E402
from rdusim.graph.tensor import DType  # noqa: E402

# (M, N, K, measured TFLOPS): DeepGEMM v1.0.0 README, "Normal GEMMs for dense models", H800 SXM5
DEEPGEMM_H800 = (
    (64, 2112, 7168, 206), (64, 24576, 1536, 289), (64, 32768, 512, 219), (64, 7168, 16384, 336),
    (64, 4096, 7168, 287), (64, 7168, 2048, 295), (128, 2112, 7168, 352), (128, 24576, 1536, 535),
    (128, 32768, 512, 358), (128, 7168, 16384, 645), (128, 4096, 7168, 533), (128, 7168, 2048, 510),
    (4096, 2112, 7168, 1058), (4096, 24576, 1536, 990), (4096, 32768, 512, 590), (4096, 7168, 16384, 1358),
    (4096, 4096, 7168, 1304), (4096, 7168, 2048, 1025),
)


def fitted_points():
    """The rows the fit uses: large M and deep K (compute-bound on any Hopper)."""
    return [p for p in DEEPGEMM_H800 if p[0] >= 4096 and p[2] >= 7168]


def work(m: int, n: int, k: int) -> KernelWork:
    """One FP8 GEMM as the GPU engine sees it: fp8 A (m x k) and B (k x n), bf16 C."""
    return KernelWork(KernelClass.GEMM, 2.0 * m * n * k, m * k + k * n + 2.0 * m * n,
                      gemm=GemmShape(1, m, n, k), dtype=DType.FP8_E4M3)


def with_efficiency(arch, eff: float):
    return dataclasses.replace(arch, kernel=dataclasses.replace(arch.kernel, tensor_fp8_efficiency=eff))


def model_tflops(arch, m: int, n: int, k: int) -> float:
    return 2.0 * m * n * k / kernel_time(arch, work(m, n, k)).duration_s / 1e12


def fit(arch) -> float:
    """The efficiency whose model times match the fitted points best (log least squares)."""
    unit = with_efficiency(arch, 1.0)
    # compute-bound: time is proportional to 1/efficiency, so each point implies one value
    implied = [tf / model_tflops(unit, m, n, k) for m, n, k, tf in fitted_points()]
    return math.exp(sum(math.log(e) for e in implied) / len(implied))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit", action="store_true", help="redo the fit and print the value")
    args = ap.parse_args(argv)
    arch = load_arch(str(ROOT / "arch" / "dgx_h100.yaml"))
    eff = fit(arch) if args.fit else arch.kernel.tensor_fp8_efficiency
    if args.fit:
        print(f"kernel.tensor_fp8_efficiency = {eff:.3f} (arch file: {arch.kernel.tensor_fp8_efficiency})")
    at = with_efficiency(arch, round(eff, 3))
    print(f"{'M':>5} {'N':>6} {'K':>6} {'measured TF':>12} {'model TF':>9} {'error':>7}  fitted")
    for m, n, k, tf in DEEPGEMM_H800:
        got = model_tflops(at, m, n, k)
        used = "yes" if (m, n, k, tf) in fitted_points() else ""
        print(f"{m:>5} {n:>6} {k:>6} {tf:>12.0f} {got:>9.0f} {100 * (got / tf - 1):>6.1f}%  {used}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
