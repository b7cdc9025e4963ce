"""How fast model runs and GPU inference simulations are.

    python benchmarks/bench_model_run.py [--repeat 3]

Prints wall seconds for `rdusim run workloads/llama2_7b_chat.yaml` in a fresh process,
then, in-process, the cold (empty run cache) and warm (same cache) simulate_inference times for the
requests the CoE study asks for (Llama-2-7B TP8, batch 1 and 8, 20 and 200 output tokens).
Target: a Llama-2-7B TP8 128-in / 20-out request well under 1 s cold.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cli = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "rdusim.cli", "run", "workloads/llama2_7b_chat.yaml", "--out", out],
                           cwd=ROOT, check=True, capture_output=True)
            cli.append(time.perf_counter() - t0)
    print(f"rdusim run llama2_7b_chat.yaml (3 platforms): median {statistics.median(cli):.2f} s "
          f"(min {min(cli):.2f}, max {max(cli):.2f})")

    from rdusim.cache import RunCache
    from rdusim.config.arch import load_arch
    from rdusim.config.deployment import Deployment
    from rdusim.config.model import load_model
    from rdusim.engine.inference import simulate_inference

    cfg = load_model("llama2-7b")
    for arch_file in ("arch/dgx_h100.yaml", "arch/dgx_a100.yaml"):
        dep = Deployment.of(load_arch(ROOT / arch_file), cfg, 8)
        arch = dep.arch
        for batch in (1, 8):
            for out in (20, 200):
                cache = RunCache()
                t0 = time.perf_counter()
                t = simulate_inference(dep, 128, out, batch, cache)
                cold = time.perf_counter() - t0
                t0 = time.perf_counter()
                simulate_inference(dep, 128, out, batch, cache)
                warm = time.perf_counter() - t0
                print(f"{arch.name:9} bs{batch} tok{out:<4} latency {t.latency_s * 1e3:8.2f} ms   "
                      f"cold {cold * 1e3:7.1f} ms   warm {warm * 1e6:6.1f} us")


if __name__ == "__main__":
    main()
