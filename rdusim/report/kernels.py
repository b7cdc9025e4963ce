"""Kernel rows out of ``RunResult.records``, read tolerantly.

Studies write flat rows; the field names may vary a little (``time_s`` or
``duration_s``; ``bytes`` or ``bytes_read`` + ``bytes_written`` or only
``oi_flops_per_byte``). A row becomes a :class:`KernelPoint` when it has what a
roofline needs (FLOPs, a time, and bytes or an intensity); other rows are
counted so the report can say what it skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from rdusim.report.keys import num

_TIME_KEYS = ("time_s", "duration_s", "dur_s", "latency_s")
_UTIL_KEYS = ("pcu_util", "pmu_util", "hbm_bw_util")


@dataclass(frozen=True)
class KernelPoint:
    platform: Optional[str]
    benchmark: str
    mode: str
    kernel: str
    flops: float
    oi: float                 # FLOP per byte of off-chip traffic
    time_s: float
    devices: float = 1.0

    @property
    def achieved(self) -> float:
        """FLOP/s per socket/GPU."""
        return self.flops / self.time_s / self.devices


def _first(row: Mapping[str, Any], keys: Sequence[str]) -> Optional[float]:
    for k in keys:
        v = num(row.get(k))
        if v is not None:
            return v
    return None


def _bytes(row: Mapping[str, Any]) -> Optional[float]:
    b = _first(row, ("bytes", "hbm_bytes", "offchip_bytes"))
    if b is not None:
        return b
    r, w = num(row.get("bytes_read")), num(row.get("bytes_written"))
    return None if r is None and w is None else (r or 0.0) + (w or 0.0)


def kernel_name(row: Mapping[str, Any]) -> str:
    for key in ("kernel", "name", "op"):
        if isinstance(row.get(key), str) and row[key]:
            return row[key]
    return str(row.get("kernel", row.get("name", "?")))


def group_of(row: Mapping[str, Any]) -> str:
    """What a kernel is coloured by: its fusion mode, else its phase."""
    return str(row.get("mode") or row.get("phase") or "")


def label(row: Mapping[str, Any]) -> str:
    parts = [str(row[k]) for k in ("platform", "benchmark", "mode", "phase") if row.get(k) not in (None, "")]
    return "/".join(parts + [kernel_name(row)])


def kernel_points(records: Sequence[Mapping[str, Any]]) -> tuple[list[KernelPoint], int, int]:
    """Rows usable on a roofline, the kernel-like rows with no FLOPs (copies,
    collectives, host work), and the rows that lack a time or bytes/intensity."""
    points, no_flops, skipped = [], 0, 0
    for row in records:
        if not isinstance(row, Mapping):
            continue
        flops, t = num(row.get("flops")), _first(row, _TIME_KEYS)
        if flops is None and t is None:
            continue                         # not a kernel row at all
        if flops is not None and flops <= 0:
            no_flops += 1
            continue
        oi = num(row.get("oi_flops_per_byte"))
        if oi is None or oi <= 0:
            b = _bytes(row)
            oi = flops / b if flops is not None and b else None
        if flops is None or t is None or not t > 0 or oi is None or not oi > 0:
            skipped += 1
            continue
        devices = _first(row, ("devices",)) or 1.0
        points.append(KernelPoint(platform=row.get("platform"), benchmark=str(row.get("benchmark", "")),
                                  mode=group_of(row), kernel=kernel_name(row), flops=flops, oi=oi, time_s=t,
                                  devices=max(devices, 1.0)))
    return points, no_flops, skipped


def utilisation_rows(records: Sequence[Mapping[str, Any]]) -> list[tuple]:
    """(label, time_s, pcu, pmu, hbm, group) for every row carrying a utilisation;
    group = (platform, benchmark, mode or phase)."""
    out = []
    for row in records:
        if isinstance(row, Mapping) and any(num(row.get(k)) is not None for k in _UTIL_KEYS):
            group = (str(row.get("platform", "")), str(row.get("benchmark", "")), group_of(row))
            out.append((label(row), _first(row, _TIME_KEYS)) + tuple(num(row.get(k)) for k in _UTIL_KEYS)
                       + (group,))
    return out


def roofs(arch: Mapping[str, Any]) -> dict[str, float]:
    """Peak FLOP/s and memory bandwidths (bytes/s) of one socket/GPU, from a plain arch spec.
    Missing fields give an empty dict (the roofline is then skipped with a note)."""
    try:
        if arch.get("kind") == "rdu" or "socket" in arch:
            pcu = arch["socket"]["pcu"]
            peak = pcu["count"] * pcu["lanes"] * pcu["stages"] * pcu["flops_per_lane_stage_per_cycle"] * pcu["clock_hz"]
            out = {"peak_flops_per_s": float(peak),
                   "HBM": float(arch["socket"]["hbm"]["bandwidth_bytes_per_s"])}
            ddr = arch["socket"].get("ddr", {}).get("bandwidth_bytes_per_s")
            if ddr:
                out["DDR"] = float(ddr)
            return out
        dev = arch["device"]
        return {"peak_flops_per_s": float(dev["tensor_flops_per_s"]),
                "HBM": float(dev["hbm"]["bandwidth_bytes_per_s"])}
    except (KeyError, TypeError, AttributeError):
        return {}
