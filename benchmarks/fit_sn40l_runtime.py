"""Fit the SambaNova runtime's two host terms (stacks/sambanova.yaml: per_model_load_s and
per_step_s) jointly to the two calibration points that separate them (references/coe.yaml,
role: calibration):

    expert-only speedup of SN40L over DGX H100, BS=1, 20 output tokens  = 1.5
    expert-only speedup of SN40L over DGX H100, BS=1, 200 output tokens = 2.3

At BS=1 every CoE batch runs exactly one expert, so its expert time is one cold request
of the expert model (it follows the router on the node): per_model_load_s L once (Program
Load + Argument Load of its kernels), the assumed per_request_s once, per_step_s S on
each of the T steps (prefill and T-1 decode steps), plus what the engine simulates
(kernels, collectives, launches). The expert time is E(T) = E0(T) + L + T S, linear in
the two unknowns, and the two targets give two independent equations:

    L + 20 S  = H(20)  / 1.5 - E0(20)
    L + 200 S = H(200) / 2.3 - E0(200)

where H(T) is the simulated DGX H100 expert time (NeMo stack, fitted separately to the
NeMo table) and E0(T) the SN40L expert time with both terms at zero. Run:

    python benchmarks/fit_sn40l_runtime.py          # solve and print; copy into stacks/sambanova.yaml
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rdusim.config.model import load_model  # noqa: E402
from rdusim.config.workload import load_workload  # noqa: E402
from rdusim.engine.inference import simulate_inference  # noqa: E402

TARGETS = {20: 1.5, 200: 2.3}      # output tokens -> expert-only speedup (SN40L paper, Table 2)


def expert_times(loaded, platform: str, **host: float) -> dict[int, float]:
    """The BS=1 expert run at each target length (cold, as in the CoE study)."""
    spec = loaded.spec
    dep = loaded.deployment(platform, load_model(spec.experts.model))
    if host:
        costs = dataclasses.replace(dep.stack.host, **host)
        dep = dataclasses.replace(dep, stack=dataclasses.replace(dep.stack, host=costs))
    return {t: simulate_inference(dep, spec.prompt_tokens, t, 1, cold=True).latency_s for t in TARGETS}


def main() -> None:
    loaded = load_workload(ROOT / "workloads" / "coe150.yaml")
    h = expert_times(loaded, "dgx_h100")
    e0 = expert_times(loaded, "sn40l", per_model_load_s=0.0, per_step_s=0.0)
    (t1, r1), (t2, r2) = TARGETS.items()
    b1, b2 = h[t1] / r1 - e0[t1], h[t2] / r2 - e0[t2]
    per_step = (b2 - b1) / (t2 - t1)
    load = b1 - t1 * per_step
    print(f"DGX H100 expert (NeMo): {h[t1] * 1e3:.2f} ms at {t1} tokens, {h[t2] * 1e3:.2f} ms at {t2}")
    print(f"SN40L expert, fitted terms at 0: {e0[t1] * 1e3:.2f} ms, {e0[t2] * 1e3:.2f} ms")
    print(f"solution: per_model_load_s = {load:.6g}, per_step_s = {per_step:.6g}")
    if load < 0 or per_step < 0:
        print("a term came out negative: the engine alone is already slower than the targets imply; "
              "the physical solution clamps it at 0 (see README)")
        load, per_step = max(load, 0.0), max(per_step, 0.0)
    e = expert_times(loaded, "sn40l", per_model_load_s=load, per_step_s=per_step)
    for t, target in TARGETS.items():
        print(f"check: {t} tokens: speedup {h[t] / e[t]:.3f} (target {target}); SN40L expert {e[t] * 1e3:.2f} ms, "
              f"of which per-step host {t * per_step * 1e3:.2f} ms, model load {load * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
