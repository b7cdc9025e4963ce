"""The fusion study's table: one line per benchmark and mode, then the speedups."""

from __future__ import annotations

from rdusim.results import RunResult
from rdusim.rows import fusion as fusion_rows
from rdusim.rows.fusion import SPEEDUP
from rdusim.rows.base import by_identity

_MODES = ("unfused", "fused_so", "fused_ho")


def summary(result: RunResult) -> str:
    extra = result.extra
    t = by_identity(fusion_rows.from_metrics(result.metrics))     # (bench, platform, mode) -> {metric: value}
    first = extra.get("first_rdu")
    names = [b["name"] for b in extra.get("benchmarks", [])]
    lines = [f"{result.workload_name}: fusion study on {first or 'no RDU platform'}"]
    head = (f"{'benchmark':<26} {'mode':<9} {'time ms':>11} {'kernels':>8} {'PCU':>6} {'PMU':>6} "
            f"{'HBM bw':>7} {'FLOP/B':>9}")
    lines.append(head)
    for b in names:
        for mode in _MODES:
            d = t.get((b, None, mode), {})
            if d.get("oom"):
                lines.append(f"{b:<26} {mode:<9} {'OOM':>11}")
                continue
            if "time_s" not in d:
                continue
            lines.append(f"{b:<26} {mode:<9} {d['time_s'] * 1e3:>11.3f} {int(d['kernels']):>8d} "
                         f"{d['pcu_util']:>6.1%} {d['pmu_util']:>6.1%} {d['hbm_bw_util']:>7.1%} "
                         f"{d['oi_flops_per_byte']:>9.1f}")
    lines.append("")
    lines.append(f"{'benchmark':<26} {'so/unfused':>11} {'ho/unfused':>11} {'ho/so':>8}   "
                 f"largest fused kernel: PCU / PMU / HBM bw")
    for b in names:
        s = t.get((b, None, SPEEDUP), {})
        if "fused_so_vs_unfused" not in s:
            continue
        big = extra.get("largest_fused_kernel", {}).get(b, {})
        tail = (f"{big.get('pcu_util', 0):.0%} / {big.get('pmu_util', 0):.0%} / {big.get('hbm_bw_util', 0):.0%}"
                if big else "")
        lines.append(f"{b:<26} {s['fused_so_vs_unfused']:>10.2f}x {s['fused_ho_vs_unfused']:>10.2f}x "
                     f"{s['fused_ho_vs_fused_so']:>7.2f}x   {tail}")
    others = [p for p in extra.get("platforms", []) if p != first]
    for p in others:
        lines.append("")
        note = extra.get("notes", {}).get(p)
        if note:
            lines.append(f"{p}: {note}")
            continue
        lines.append(f"{p}: {'benchmark':<26} {'unfused ms':>11} {'fused ms':>11} {'speedup':>8}")
        for b in names:
            unfused, speedup = t.get((b, p, "unfused"), {}), t.get((b, p, SPEEDUP), {})
            fused, fused_ho = t.get((b, p, "fused"), {}), t.get((b, p, "fused_ho"), {})
            if unfused.get("oom"):
                lines.append(f"{'':<{len(p) + 2}}{b:<26} {'OOM':>11} {'OOM':>11}")
            elif "time_s" in unfused and "time_s" in fused:        # a GPU: unfused / fused
                lines.append(f"{'':<{len(p) + 2}}{b:<26} {unfused['time_s'] * 1e3:>11.3f} "
                             f"{fused['time_s'] * 1e3:>11.3f} {speedup['fused_vs_unfused']:>7.2f}x")
            elif "time_s" in unfused and "time_s" in fused_ho:     # a second RDU: unfused / fused_ho
                lines.append(f"{'':<{len(p) + 2}}{b:<26} {unfused['time_s'] * 1e3:>11.3f} "
                             f"{fused_ho['time_s'] * 1e3:>11.3f} {speedup['fused_ho_vs_unfused']:>7.2f}x")
    reasons = extra.get("oom_reasons", {})
    if reasons:
        lines.append("")
        lines += [f"OOM {k}: {v}" for k, v in reasons.items()]
    return "\n".join(lines)
