"""Regenerate the synthetic results.json files the report tests render.

    python tests/data/report_synthetic/make.py

The numbers are made up (shaped like the SN40L paper's), not simulated: they
exercise the report, not the simulator. Deterministic.
"""

from __future__ import annotations

import json
from pathlib import Path

from rdusim.config.arch import load_arch
from rdusim.results import RunResult, plain

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
PLATS = ("sn40l", "dgx_h100", "dgx_a100")


def archs(names=PLATS):
    return {p: plain(load_arch(ROOT / "arch" / f"{p}.yaml")) for p in names}


def resolved(kind, names=PLATS, **more):
    return {"name": f"synthetic_{kind}", "kind": kind, **more,
            "platforms": {p: {"arch": f"arch/{p}.yaml", "tp": 8} for p in names}}


def coe() -> RunResult:
    m = {}
    speed = {"sn40l": 1.0, "dgx_h100": 1.5, "dgx_a100": 2.6}
    switch = {"sn40l": 0.1, "dgx_h100": 1.6, "dgx_a100": 3.2}
    for bs in (1, 8):
        for tok in (20, 200):
            for p in PLATS:
                pre = f"coe.{p}.bs{bs}.tok{tok}"
                router, sw, ex = 0.01 * speed[p], switch[p] * (bs ** 0.5), 0.005 * tok * speed[p] * (1 + bs / 16)
                m.update({f"{pre}.router_s": router, f"{pre}.switch_s": sw, f"{pre}.expert_s": ex,
                          f"{pre}.latency_s": router + sw + ex, f"{pre}.oom": 0,
                          f"{pre}.hit_rate": 0.5 if p == "sn40l" else 0.2})
                for n in (10, 25, 50, 75, 100, 150, 200, 300, 850):
                    spill = n > 50 and p != "sn40l"
                    oom = (p != "sn40l" and n > 200) or n > 800
                    lat = router + ex + (sw if spill else 0.02)
                    m[f"{pre}.experts{n}.latency_s"] = None if oom and p == "dgx_a100" else lat
                    m[f"{pre}.experts{n}.oom"] = int(oom)
            for c in ("dgx_h100", "dgx_a100"):
                a, b = f"coe.sn40l.bs{bs}.tok{tok}", f"coe.{c}.bs{bs}.tok{tok}"
                m[f"coe.speedup.sn40l_vs_{c}.bs{bs}.tok{tok}.overall"] = m[f"{b}.latency_s"] / m[f"{a}.latency_s"]
                m[f"coe.speedup.sn40l_vs_{c}.bs{bs}.tok{tok}.expert"] = m[f"{b}.expert_s"] / m[f"{a}.expert_s"]
    for c in ("dgx_h100", "dgx_a100"):
        m[f"coe.speedup.sn40l_vs_{c}.switch"] = switch[c] / switch["sn40l"]
    for p, (mx, hbm) in {"sn40l": (850, 30), "dgx_h100": (200, 45), "dgx_a100": (200, 45)}.items():
        m[f"coe.capacity.{p}.max_experts"] = mx
        m[f"coe.capacity.{p}.hbm_experts"] = hbm
        for n in (50, 150, 500, 1000):
            m[f"coe.footprint.{p}.nodes_for{n}"] = -(-n // (mx if p == "sn40l" else hbm))
    return RunResult("synthetic_coe", "coe", resolved("coe", experts=150), archs(), 0, m)


BENCHES = {"llama2_7b_4k_decode": (2.0, 6.0), "mistral_7b_4k_decode": (3.0, 8.0),
           "llama2_70b_4k_prefill": (2.0, 1.1), "flashfftconv_1m": (13.0, 1.0)}


def fusion() -> RunResult:
    """Shaped like studies/fusion.py: keys per platform (fusion.<b>.<platform>.<mode>.*) and,
    for the first RDU, the unqualified fusion.<b>.<mode>.* as well; a GPU with modes unfused/fused."""
    m, records = {}, []
    for b, (fuse, ho) in BENCHES.items():
        times = {"unfused": 1.0, "fused_so": 1.0 / fuse, "fused_ho": 1.0 / fuse / ho}
        for mode, t in times.items():
            vals = {"time_s": t, "kernels": 200 if mode == "unfused" else 4,
                    "pcu_util": 0.3 if mode == "unfused" else 0.85, "pmu_util": 0.4 if mode == "unfused" else 0.9,
                    "hbm_bw_util": 0.5 if mode == "unfused" else 0.83,
                    "oi_flops_per_byte": 39.5 if mode == "unfused" else 410.4}
            for leaf, v in vals.items():
                m[f"fusion.{b}.{mode}.{leaf}"] = v
                m[f"fusion.{b}.sn40l.{mode}.{leaf}"] = v
            for k in range(3):
                oi = (10, 40, 400)[k] * (1 if mode == "unfused" else 3)
                flops = 1e12 * (k + 1)
                records.append({"benchmark": b, "mode": mode, "kernel": k, "name": f"L{k}.mlp", "platform": "sn40l",
                                "flops": flops, "hbm_bytes": flops / oi, "time_s": flops / (oi * 1.5e12),
                                "pcu_util": 0.1 * (k + 3), "pmu_util": 0.2 * (k + 1), "hbm_bw_util": 0.75})
        for key, val in (("fused_so_vs_unfused", fuse), ("fused_ho_vs_unfused", fuse * ho), ("fused_ho_vs_fused_so", ho)):
            m[f"fusion.{b}.speedup.{key}"] = val
            m[f"fusion.{b}.sn40l.speedup.{key}"] = val
        for mode, t in (("unfused", 1.5), ("fused", 1.5 / fuse)):
            m[f"fusion.{b}.dgx_h100.{mode}.time_s"] = t
            m[f"fusion.{b}.dgx_h100.{mode}.kernels"] = 300 if mode == "unfused" else 40
            records.append({"benchmark": b, "mode": mode, "platform": "dgx_h100", "name": "gemm", "kind": "matmul",
                            "flops": 1e12, "bytes": 1e10, "duration_s": 2e-3})
            records.append({"benchmark": b, "mode": mode, "platform": "dgx_h100", "name": "framework",
                            "kind": "host", "flops": 0.0, "bytes": 0.0, "duration_s": 1e-4})
        m[f"fusion.{b}.dgx_h100.speedup.fused_vs_unfused"] = fuse
    records.append({"benchmark": "llama2_7b_4k_decode", "mode": "unfused", "kernel": "no_bytes",
                    "platform": "sn40l", "flops": 1e9, "time_s": 1e-3})
    names = ("sn40l", "dgx_h100")
    return RunResult("synthetic_fusion", "fusion", resolved("fusion", names), archs(names), 0, m, tuple(records))


def model() -> RunResult:
    m = {}
    for p, f in {"sn40l": 1.0, "dgx_h100": 2.5, "dgx_a100": 4.0}.items():
        parts = {"compute": 0.01 * f, "memory": 0.02 * f, "launch": 0.001 * f ** 2, "collective": 0.004 * f,
                 "host": 0.002}
        for c, v in parts.items():
            m[f"model.{p}.breakdown.{c}_s"] = v
        m[f"model.{p}.latency_s"] = sum(parts.values()) * 0.9
        m[f"model.{p}.ttft_s"] = 0.004 * f
        m[f"model.{p}.tpot_s"] = (m[f"model.{p}.latency_s"] - 0.004 * f) / 19
    return RunResult("synthetic_model", "model", resolved("model", model="llama2-7b"), archs(), 7, m)


if __name__ == "__main__":
    for name, fn in (("coe", coe), ("fusion", fusion), ("model", model)):
        (HERE / f"{name}.json").write_text(json.dumps(fn().to_json(), indent=1) + "\n")
        print(f"wrote {HERE / name}.json")
