"""A model run's ``offload:`` part: a MoE model's experts as individuals (rdusim.engine.offload).

Per platform P, scope ``offload``: ``model.P.offload.resident_experts`` (experts HBM holds
beside the rest of the model, its KV cache, workspace and one copy buffer),
``.expert_bytes``, ``.copy_s`` (one expert's copy into HBM), ``.oom`` (1: not even the
model without its experts fits), and per residency policy R and rule U
``model.P.offload.R.U.<metric>``: ``prefill_s``, ``decode_tokens_per_s``, ``latency_s``,
``hit_rate`` (expert calls served from HBM), ``copy_bytes``, ``activation_bytes`` (sent
to in-place experts and back), ``in_place_busy_fraction`` (the CPU's / in-place
executor's busy time over the request), ``copies``, ``in_place_calls``: means over
``replications`` independent routings, each with its 95% confidence interval.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from rdusim.config.formats import for_machine
from rdusim.config.offload import OffloadRule, OffloadSpec, RoutingDist
from rdusim.config.workload import resolve_path
from rdusim.engine.inference import simulate_inference
from rdusim.engine.offload.costs import expert_bytes, expert_costs
from rdusim.engine.offload.residency import most_popular
from rdusim.engine.offload.routing import layer_popularity, load_trace, route, trace_counts
from rdusim.engine.offload.run import request
from rdusim.memory import activation_workspace_bytes, kv_bytes_per_rank, slots, weight_bytes_per_rank
from rdusim.studies.coe_stats import mean_ci
from rdusim.rows.model import ModelScope

METRICS = ("prefill_s", "decode_tokens_per_s", "latency_s", "hit_rate", "copy_bytes", "activation_bytes",
           "in_place_busy_fraction", "copies", "in_place_calls")


def resident_slots(dep, batch: int, prompt: int, output: int, cap: Optional[int]) -> tuple[int, Optional[str]]:
    """Experts one device's HBM holds (all layers), and why none fit when the rest does not."""
    cfg, arch, tp = dep.model, dep.arch, dep.tp
    shard = expert_bytes(cfg) / tp
    total_experts = cfg.num_hidden_layers * cfg.num_local_experts
    dense = weight_bytes_per_rank(cfg, tp) - total_experts * shard
    rest = (dense + kv_bytes_per_rank(cfg, tp, batch, prompt + output)
            + activation_workspace_bytes(dep, batch, prompt) + shard)     # + one copy buffer
    free = arch.device_hbm.usable_bytes - rest
    if free < 0:
        return 0, (f"per {arch.DEVICE}: the model without its experts, its KV cache, workspace and one copy "
                   f"buffer need {rest / 1e9:.2f} GB of {arch.device_hbm.usable_bytes / 1e9:.2f} GB usable")
    n = min(slots(free, shard), total_experts)
    n = n if cap is None else min(n, cap)
    # the experts HBM does not hold live where the machine keeps them: each device's shard in its
    # spill tier (the SN40L's DDR), else whole in the host's DRAM
    spill = arch.spill_tier
    home, need = (spill, (total_experts - n) * shard) if spill is not None else \
        (arch.host_dram, (total_experts - n) * shard * tp)
    if need > home.usable_bytes:
        return n, (f"the {total_experts - n} experts outside HBM need {need / 1e9:.2f} GB where they live but it "
                   f"holds {home.usable_bytes / 1e9:.2f} GB usable")
    return n, None


def simulate(loaded, name: str, cfg, cache, index: int) -> tuple[dict, dict, Optional[str]]:
    """(values, 95% intervals by metric, out-of-memory reason or None) of platform ``name``."""
    spec = loaded.spec
    off: OffloadSpec = spec.offload
    dep = loaded.deployment(name, for_machine(cfg, loaded.archs[name]))
    b, p, o = spec.batch_size, spec.prompt_tokens, spec.output_tokens
    n_slots, oom = resident_slots(dep, b, p, o, off.max_resident_experts.get(name))
    costs = expert_costs(dep)
    values: dict = {"resident_experts": n_slots, "expert_bytes": costs.expert_bytes, "copy_s": costs.copy_s,
                    "oom": int(oom is not None)}
    if oom is not None:
        return values, {}, oom
    base = simulate_inference(dep, p, o, b, cache)
    base_decode = base.latency_s - base.ttft_s
    layers, experts, k = cfg.num_hidden_layers, cfg.num_local_experts, cfg.num_experts_per_tok
    # no in-place executor (no host_cpu in the arch file): every miss is copied, always_in_place is not run
    rules = [r for r in off.rules if costs.in_place is not None or r is not OffloadRule.ALWAYS_IN_PLACE]
    rng = np.random.default_rng([loaded.seed, index])
    samples: dict[str, list[float]] = {}
    trace = None
    if off.routing is RoutingDist.TRACE:
        trace = load_trace(str(resolve_path(off.trace, loaded.file)), layers, experts, k)
    for _ in range(off.replications):
        if trace is not None:            # a random start in the recorded routing; the whole trace calibrates
            at = int(rng.integers(trace.shape[0]))
            initial = most_popular(trace_counts(trace, 0, trace.shape[0], experts), n_slots)
            pre = trace_counts(trace, at, b * p, experts)
            dec = [trace_counts(trace, at + b * p + b * j, b, experts) for j in range(o - 1)]
        else:
            pop = layer_popularity(layers, experts, off.routing, off.skew, rng)
            initial = most_popular(route(pop, off.calibration_tokens, k, rng), n_slots)
            pre = route(pop, b * p, k, rng)
            dec = [route(pop, b, k, rng) for _ in range(o - 1)]
        for res in off.residency:
            for rule in rules:
                out = request(costs, pre, dec, base.ttft_s, base_decode, initial, n_slots, res, rule,
                              off.overlap_in_place)
                t = out.tally
                vals = {"prefill_s": out.prefill_s,
                        "decode_tokens_per_s": b * (o - 1) / out.decode_s if out.decode_s > 0 else 0.0,
                        "latency_s": out.latency_s, "hit_rate": t.hits / t.calls if t.calls else 1.0,
                        "copy_bytes": t.copy_bytes, "activation_bytes": t.activation_bytes,
                        "in_place_busy_fraction": t.in_place_busy_s / out.latency_s,
                        "copies": t.copies, "in_place_calls": t.in_place}
                for m, v in vals.items():
                    samples.setdefault(f"{res.value}.{rule.value}.{m}", []).append(float(v))
    cis = {}
    for key, vs in samples.items():
        mean, lo, hi = mean_ci(vs)
        values[key] = mean
        cis[key] = (lo, hi)
    return values, cis, None


def summary_lines(t: dict, platforms: list, notes: dict) -> list[str]:
    """The offload table of a model run's summary: one line per platform, residency and rule."""
    cols = ("prefill ms", "decode tok/s", "hit rate", "copy GB", "act MB", "in-place busy")
    lines = ["", "Experts offloaded (means over independent routings)",
             f"{'platform':<12} {'residency':<9} {'rule':<16} {'slots':>6} " + " ".join(f"{c:>13}" for c in cols)]
    for name in platforms:
        d = t.get((name, ModelScope.OFFLOAD))
        if d is None:
            continue
        if d.get("oom"):
            lines.append(f"{name:<12} OOM: {notes.get(f'{name}.offload', 'out of memory')}")
            continue
        combos = sorted({tuple(k.split(".")[:2]) for k in d if k.count(".") == 2}, key=lambda c: (c[0], c[1]))
        for res, rule in combos:
            g = lambda m: d[f"{res}.{rule}.{m}"]   # noqa: E731
            vals = (g("prefill_s") * 1e3, g("decode_tokens_per_s"), g("hit_rate"), g("copy_bytes") / 1e9,
                    g("activation_bytes") / 1e6, g("in_place_busy_fraction"))
            lines.append(f"{name:<12} {res:<9} {rule:<16} {int(d['resident_experts']):>6} "
                         + " ".join(f"{v:>13.3f}" for v in vals))
    return lines
