"""A model run's ``scaling:`` part: one platform's machine at several sizes, per weight format.

Per weight format W (bf16, int8, int4: int weights with one fp16 scale per ``group_size``,
computed natively where the machine can, else dequantised to bf16) and machine size S, the
model tensor parallel over all of S's devices; keys ``model.P.scaling.W.S.<metric>``:
``devices``, ``fits`` (the workload's batch and context), ``max_batch.c<C>`` (the largest
batch whose sequences each hold C tokens of KV cache beside the weights and the prefill
workspace of the workload's prompt: the memory rule of rdusim.memory), and where it fits
``ttft_s`` (prefill), ``tpot_s`` (decode step), ``tokens_per_s_per_device``,
``collective_share`` (the mean decode step's collective time over the step),
``interconnect_bound`` (1: the step's collectives take longer than its compute and memory
traffic together), ``realistic_over_ideal`` (against roofline mode) and the curve
``curve.b<B>.tpot_s`` / ``.tokens_per_s_per_device`` for each batch B of ``batches`` that
fits. Per W: ``model.P.scaling.W.min_devices`` (the smallest size that holds the model at
the workload's batch; 0: none) and ``.interconnect_bound_devices`` (the smallest size whose
decode step is interconnect-bound; 0: none).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from rdusim.config import limits as L
from rdusim.config.arch import load_arch
from rdusim.config.deployment import Deployment
from rdusim.config.formats import WeightFormat, for_machine
from rdusim.config.scaling import ScalingSpec
from rdusim.engine.inference import simulate_inference
from rdusim.errors import InputError
from rdusim.memory import device_memory
from rdusim.rows.model import ModelScope


def largest(fits: Callable[[int], bool], limit: int) -> int:
    """The largest b in 1..limit with fits(b) (fits monotone; 0 when even 1 does not fit)."""
    if not fits(1):
        return 0
    lo, hi = 1, 2
    while hi <= limit and fits(hi):
        lo, hi = hi, hi * 2
    hi = min(hi, limit + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def run(loaded, cfg, cache) -> dict[str, float]:
    """The scaling metrics (below ``model.P.scaling.``) of the workload's ``scaling:``."""
    spec = loaded.spec
    sc: ScalingSpec = spec.scaling
    if sc.platform not in spec.platforms:
        raise InputError(loaded.file, "scaling.platform", f"a platform of this workload ({sorted(spec.platforms)})",
                         sc.platform)
    plat = spec.platforms[sc.platform]
    machines = {n: load_arch(loaded.arch_files[sc.platform], list(over.items())) for n, over in sc.machines.items()}
    p, o, b = spec.prompt_tokens, spec.output_tokens, spec.batch_size
    out: dict[str, float] = {}
    for w in sc.weight_formats:
        wf = WeightFormat(w, sc.group_size if w.is_quantized else None)
        fmt = dataclasses.replace(spec.formats, weight=wf, compute=None, native_compute=True)
        fitting, bound = [], []
        for name, arch in sorted(machines.items(), key=lambda kv: kv[1].devices_per_node):
            tp = arch.devices_per_node
            if cfg.num_attention_heads % tp or cfg.intermediate_size % tp:
                raise InputError(loaded.file, f"scaling.machines.{name}",
                                 f"a machine whose device count divides {cfg.name}'s attention heads and FFN width "
                                 f"(tensor parallel over all its devices)", f"{tp} {arch.DEVICE}s")
            model = for_machine(cfg.with_formats(fmt), arch)
            key = f"{w.value}.{name}."
            values = _size(loaded, plat, arch, model, tp, p, o, b, sc, cache)
            out.update({key + k: v for k, v in values.items()})
            if values["fits"]:
                fitting.append(tp)
                if values.get("interconnect_bound"):
                    bound.append(tp)
        out[f"{w.value}.min_devices"] = min(fitting, default=0)
        out[f"{w.value}.interconnect_bound_devices"] = min(bound, default=0)
    return out


def _size(loaded, plat, arch, model, tp: int, p: int, o: int, b: int, sc: ScalingSpec, cache) -> dict[str, float]:
    dep = Deployment(arch, loaded.stacks[sc.platform], model, tp, plat.fusion, loaded.launch(sc.platform),
                     loaded.execution)

    def fits(batch: int, context: int) -> bool:
        """The memory rule of every model run (rdusim.memory.device_memory)."""
        return device_memory(dep, batch, context, p).fits

    values: dict[str, float] = {"devices": tp, "fits": int(fits(b, p + o))}
    for c in sc.contexts:
        values[f"max_batch.c{c}"] = largest(lambda n: fits(n, c), L.MAX_BATCH)
    if not values["fits"]:
        return values
    t = simulate_inference(dep, p, o, b, cache)
    step = t.step_s
    coll = step.get("collective", 0.0)
    ideal = simulate_inference(dep.ideal(), p, o, b, cache)
    values.update({"ttft_s": t.ttft_s, "tpot_s": t.tpot_s,
                   "tokens_per_s_per_device": b / t.tpot_s / tp if t.tpot_s > 0 else 0.0,
                   "collective_share": coll / t.tpot_s if t.tpot_s > 0 else 0.0,
                   "interconnect_bound": int(coll > step.get("compute", 0.0) + step.get("memory", 0.0)),
                   "realistic_over_ideal": t.latency_s / ideal.latency_s if ideal.latency_s > 0 else 0.0})
    for n in sc.batches:
        if fits(n, p + o):
            tn = simulate_inference(dep, p, o, n, cache)
            values[f"curve.b{n}.tpot_s"] = tn.tpot_s
            values[f"curve.b{n}.tokens_per_s_per_device"] = n / tn.tpot_s / tp if tn.tpot_s > 0 else 0.0
    return values


def summary_lines(t: dict, platform: str) -> list[str]:
    """The scaling table of a model run's summary (``t``: (platform, scope) -> {metric: value})."""
    d = t.get((platform, ModelScope.SCALING), {})
    if not d:
        return []
    formats = sorted({k.split(".")[0] for k in d})
    sizes = sorted({k.split(".")[1] for k in d if k.endswith(".devices")}, key=lambda s: d[f"{formats[0]}.{s}.devices"])
    contexts = sorted({k.split(".")[-1] for k in d if ".max_batch." in k}, key=lambda c: int(c[1:]))
    cols = ["devices", "fits"] + [f"maxb {c[1:]}" for c in contexts] + ["ttft ms", "tpot ms", "tok/s/dev",
                                                                        "coll share", "vs ideal"]
    lines = ["", f"Scaling {platform} (TP over every device; maxb C: largest batch at context C)",
             f"{'format':<6} {'size':<8} " + " ".join(f"{c:>10}" for c in cols)]
    for w in formats:
        for s in sizes:
            g = lambda m: d.get(f"{w}.{s}.{m}")   # noqa: E731
            if g("devices") is None:
                continue
            vals = [f"{int(g('devices')):>10}", f"{int(g('fits')):>10}"]
            vals += [f"{int(g(f'max_batch.{c}')):>10}" for c in contexts]
            if g("fits"):
                vals += [f"{1e3 * g('ttft_s'):>10.1f}", f"{1e3 * g('tpot_s'):>10.2f}",
                         f"{g('tokens_per_s_per_device'):>10.2f}", f"{g('collective_share'):>10.2f}",
                         f"{g('realistic_over_ideal'):>10.2f}"]
            lines.append(f"{w:<6} {s:<8} " + " ".join(vals))
        lines.append(f"{w:<6} smallest size that fits: {int(d[f'{w}.min_devices'])} devices; "
                     f"decode interconnect-bound from: {int(d[f'{w}.interconnect_bound_devices'])} devices (0: never)")
    return lines
