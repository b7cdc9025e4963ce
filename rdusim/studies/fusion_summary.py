"""The fusion study's table: one line per benchmark and mode, then the speedups."""

from __future__ import annotations

from rdusim.results import RunResult

_MODES = ("unfused", "fused_so", "fused_ho")


def summary(result: RunResult) -> str:
    m, extra = result.metrics, result.extra
    first = extra.get("first_rdu")
    names = [b["name"] for b in extra.get("benchmarks", [])]
    lines = [f"{result.workload_name}: fusion study on {first or 'no RDU platform'}"]
    head = (f"{'benchmark':<26} {'mode':<9} {'time ms':>11} {'kernels':>8} {'PCU':>6} {'PMU':>6} "
            f"{'HBM bw':>7} {'FLOP/B':>9}")
    lines.append(head)
    for b in names:
        for mode in _MODES:
            p = f"fusion.{b}.{mode}"
            if m.get(f"{p}.oom"):
                lines.append(f"{b:<26} {mode:<9} {'OOM':>11}")
                continue
            if f"{p}.time_s" not in m:
                continue
            lines.append(f"{b:<26} {mode:<9} {m[p + '.time_s'] * 1e3:>11.3f} {int(m[p + '.kernels']):>8d} "
                         f"{m[p + '.pcu_util']:>6.1%} {m[p + '.pmu_util']:>6.1%} {m[p + '.hbm_bw_util']:>7.1%} "
                         f"{m[p + '.oi_flops_per_byte']:>9.1f}")
    lines.append("")
    lines.append(f"{'benchmark':<26} {'so/unfused':>11} {'ho/unfused':>11} {'ho/so':>8}   "
                 f"largest fused kernel: PCU / PMU / HBM bw")
    for b in names:
        s = f"fusion.{b}.speedup"
        if f"{s}.fused_so_vs_unfused" not in m:
            continue
        big = extra.get("largest_fused_kernel", {}).get(b, {})
        tail = (f"{big.get('pcu_util', 0):.0%} / {big.get('pmu_util', 0):.0%} / {big.get('hbm_bw_util', 0):.0%}"
                if big else "")
        lines.append(f"{b:<26} {m[s + '.fused_so_vs_unfused']:>10.2f}x {m[s + '.fused_ho_vs_unfused']:>10.2f}x "
                     f"{m[s + '.fused_ho_vs_fused_so']:>7.2f}x   {tail}")
    others = [p for p in extra.get("platforms", []) if p != first]
    for p in others:
        lines.append("")
        note = extra.get("notes", {}).get(p)
        if note:
            lines.append(f"{p}: {note}")
            continue
        lines.append(f"{p}: {'benchmark':<26} {'unfused ms':>11} {'fused ms':>11} {'speedup':>8}")
        for b in names:
            q = f"fusion.{b}.{p}"
            if m.get(f"{q}.unfused.oom"):
                lines.append(f"{'':<{len(p) + 2}}{b:<26} {'OOM':>11} {'OOM':>11}")
            elif f"{q}.unfused.time_s" in m:
                lines.append(f"{'':<{len(p) + 2}}{b:<26} {m[q + '.unfused.time_s'] * 1e3:>11.3f} "
                             f"{m[q + '.fused.time_s'] * 1e3:>11.3f} {m[q + '.speedup.fused_vs_unfused']:>7.2f}x")
            elif f"{q}.fused_ho.time_s" in m:
                lines.append(f"{'':<{len(p) + 2}}{b:<26} {m[q + '.unfused.time_s'] * 1e3:>11.3f} "
                             f"{m[q + '.fused_ho.time_s'] * 1e3:>11.3f} {m[q + '.speedup.fused_ho_vs_unfused']:>7.2f}x")
    reasons = extra.get("oom_reasons", {})
    if reasons:
        lines.append("")
        lines += [f"OOM {k}: {v}" for k, v in reasons.items()]
    return "\n".join(lines)
