"""Fit the two terms the CoE release of the SambaNova runtime adds to the bottom-up stack
(stacks/sambanova_coe_2024.yaml: ``added.expert_dispatch.per_model_load_s`` and
``added.generation_loop.per_step_s``) jointly to the two calibration points that separate
them (references/coe.yaml, role: calibration):

    expert-only speedup of SN40L over DGX H100, BS=1, 20 output tokens  = 1.5
    expert-only speedup of SN40L over DGX H100, BS=1, 200 output tokens = 2.3

The bottom-up stack (stacks/sambanova.yaml) is fitted to nothing: its per-step round trip
over PCIe, host wake-up and host loop, its request set-up and the program load of a model
switch come from the machine, the model and declared assumptions. The release adds only
two named mechanisms of the paper's flow on top of it: a host generation loop paid every
step (S) and the expert dispatch paid by every run that follows another model on the node
(L: in CoE the router and the experts alternate, so every run is cold).

At BS=1 every CoE batch runs exactly one expert, so its expert time is one cold request of
the expert model: E(T) = E0(T) + L + T S, where E0 is the expert time on the release with
both added terms at zero (= the bottom-up stack: kernels, collectives, launches, the
bottom-up host terms) and the T steps are the prefill and T-1 decode steps. The two
targets give two independent equations, linear in the unknowns:

    L + 20 S  = H(20)  / 1.5 - E0(20)
    L + 200 S = H(200) / 2.3 - E0(200)

where H(T) is the simulated DGX H100 expert time (NeMo stack, fitted separately to the NeMo
table). Run:

    python benchmarks/fit_sn40l_runtime.py     # solve and print; copy into stacks/sambanova_coe_2024.yaml
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
RELEASE = "sambanova_coe_2024"
LOAD, STEP = ("expert_dispatch", "per_model_load_s"), ("generation_loop", "per_step_s")


def with_added(stack, load: float, step: float):
    """The release with its two fitted terms set."""
    added = dict(stack.added)
    added[LOAD[0]] = dataclasses.replace(added[LOAD[0]], **{LOAD[1]: load})
    added[STEP[0]] = dataclasses.replace(added[STEP[0]], **{STEP[1]: step})
    return dataclasses.replace(stack, added=added)


def expert_times(loaded, platform: str, terms: tuple[float, float] | None = None) -> dict[int, float]:
    """The BS=1 expert run at each target length (cold, as in the CoE study)."""
    spec = loaded.spec
    dep = loaded.deployment(platform, load_model(spec.experts.model))
    if terms is not None:
        dep = dataclasses.replace(dep, stack=with_added(dep.stack, *terms))
    return {t: simulate_inference(dep, spec.prompt_tokens, t, 1, cold=True).latency_s for t in TARGETS}


def main() -> None:
    loaded = load_workload(ROOT / "workloads" / "coe150.yaml")
    stack = loaded.stacks["sn40l"]
    if stack.name != RELEASE:
        raise SystemExit(f"workloads/coe150.yaml runs the SN40L on stack {stack.name}, not {RELEASE}")
    h = expert_times(loaded, "dgx_h100")
    e0 = expert_times(loaded, "sn40l", (0.0, 0.0))
    (t1, r1), (t2, r2) = TARGETS.items()
    b1, b2 = h[t1] / r1 - e0[t1], h[t2] / r2 - e0[t2]
    per_step = (b2 - b1) / (t2 - t1)
    load = b1 - t1 * per_step
    print(f"DGX H100 expert (NeMo): {h[t1] * 1e3:.2f} ms at {t1} tokens, {h[t2] * 1e3:.2f} ms at {t2}")
    print(f"SN40L expert on the bottom-up stack (added terms at 0): {e0[t1] * 1e3:.2f} ms, {e0[t2] * 1e3:.2f} ms")
    print(f"solution: added.{LOAD[0]}.{LOAD[1]} = {load:.6g}, added.{STEP[0]}.{STEP[1]} = {per_step:.6g}")
    if load < 0 or per_step < 0:
        print("a term came out negative: the engine alone is already slower than the targets imply; "
              "the physical solution clamps it at 0 (see README)")
        load, per_step = max(load, 0.0), max(per_step, 0.0)
    e = expert_times(loaded, "sn40l", (load, per_step))
    for t, target in TARGETS.items():
        print(f"check: {t} tokens: speedup {h[t] / e[t]:.3f} (target {target}); SN40L expert {e[t] * 1e3:.2f} ms, "
              f"of which generation loop {t * per_step * 1e3:.2f} ms, expert dispatch {load * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
