"""Energy of one device from what it did: the one power model of every machine family.

A device draws its static (idle) power all the time, plus dynamic energy for each unit of
activity: per FLOP in the format it computes in, per byte moved at each memory tier (HBM,
the spill tier -- the SN40L's DDR) and over each link (the peer fabric -- NVLink, P2P,
ICI -- and the host link, PCIe). The per-unit figures are the arch file's ``power:`` block
(:class:`rdusim.config.machine_cost.PowerSpec`: published per-access energies or declared
assumptions).

**Calibration to the TDP.** Per-access figures leave out much of what a chip spends
(register files, on-chip SRAM and networks, clocks, control), and none bounds the total.
So the dynamic figures are scaled by one factor per device, ``scale``, chosen so that every
unit busy at its peak for one second -- tensor units at their peak rate in the format that
costs most power, every memory tier and link at its peak bandwidth -- draws exactly
``tdp_w - static_w`` (the *calibrate* choice, not a cap: energy stays linear in activity,
so it adds up across records and steps). The relative weights between units come from the
figures; the total from the TDP. ``scale`` is reported (``rdusim arch show``).

Activity comes from what the engines record in a step (:class:`rdusim.engine.step.StepResult`:
``flops``, ``bytes_by_tier``, ``link_bytes``) or from a copy (bytes over a tier and links),
so a step's energy is computed here, once, for every family.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from rdusim.graph.tensor import DType


class Unit(enum.Enum):
    """What moves bytes on a device (compute is counted in FLOPs)."""

    HBM = "hbm"                 # device memory
    SPILL = "spill"             # the device-attached spill tier (SN40L DDR)
    FABRIC = "fabric"           # peer links: NVLink, P2P, ICI (bytes the device sends)
    HOST_LINK = "host_link"     # PCIe to the host


# StepResult.bytes_by_tier keys -> units ("host": bytes read from host memory cross the host link)
TIER_UNITS = {"hbm": Unit.HBM, "ddr": Unit.SPILL, "host": Unit.HOST_LINK}
# StepResult.link_bytes keys -> units
LINK_UNITS = {"fabric": Unit.FABRIC, "host_link": Unit.HOST_LINK}


@dataclass(frozen=True)
class Activity:
    """What one device did over ``seconds``: FLOPs in ``dtype`` and bytes per unit."""

    seconds: float
    flops: float = 0.0
    dtype: DType = DType.BF16
    bytes: Mapping[Unit, float] = field(default_factory=dict)

    def __add__(self, other: "Activity") -> "Activity":
        if other.flops and self.flops and other.dtype != self.dtype:
            raise ValueError("activities in different compute formats cannot be added")
        moved = dict(self.bytes)
        for u, b in other.bytes.items():
            moved[u] = moved.get(u, 0.0) + b
        return Activity(self.seconds + other.seconds, self.flops + other.flops,
                        self.dtype if self.flops else other.dtype, moved)

    def scaled(self, k: float) -> "Activity":
        """``k`` times this activity (``k`` identical steps, or an interpolated share)."""
        return Activity(self.seconds * k, self.flops * k, self.dtype, {u: b * k for u, b in self.bytes.items()})


def step_activity(step: Any, dtype: DType) -> Activity:
    """A StepResult's activity per device (``dtype``: the deployment's compute format)."""
    moved: dict[Unit, float] = {}
    for key, b in step.bytes_by_tier.items():
        u = TIER_UNITS.get(key)
        if u is None:
            raise ValueError(f"no energy unit for memory tier {key!r}")
        moved[u] = moved.get(u, 0.0) + b
    for key, b in getattr(step, "link_bytes", {}).items():
        u = LINK_UNITS[key]
        moved[u] = moved.get(u, 0.0) + b
    return Activity(step.time_s, step.flops, dtype, moved)


def idle(seconds: float) -> Activity:
    return Activity(seconds)


@dataclass(frozen=True)
class EnergyModel:
    """One device's power model, calibrated (module docstring)."""

    machine: str
    tdp_w: float
    static_w: float
    scale: float                              # dynamic figures x scale: all units at peak = tdp - static
    j_per_flop: Mapping[DType, float]         # scaled
    j_per_byte: Mapping[Unit, float]          # scaled
    peak_bytes_per_s: Mapping[Unit, float]    # each unit's peak (what "100% busy" means)
    peak_flops_per_s: Mapping[DType, float]

    @classmethod
    def of(cls, machine: Any) -> Optional["EnergyModel"]:
        """The model of ``machine``'s devices (None: its arch file has no ``power:`` block)."""
        p = getattr(machine, "power", None)
        if p is None:
            return None
        spill = machine.spill_tier
        raw_bytes = {Unit.HBM: p.hbm_j_per_byte, Unit.HOST_LINK: p.host_link_j_per_byte}
        peak = {Unit.HBM: machine.device_hbm.bandwidth_bytes_per_s,
                Unit.HOST_LINK: machine.host_link_bytes_per_s}
        if spill is not None:
            raw_bytes[Unit.SPILL] = p.spill_j_per_byte if p.spill_j_per_byte is not None else p.hbm_j_per_byte
            peak[Unit.SPILL] = spill.bandwidth_bytes_per_s
        if machine.fabric_bytes_per_s > 0:
            raw_bytes[Unit.FABRIC] = p.fabric_j_per_byte if p.fabric_j_per_byte is not None else 0.0
            peak[Unit.FABRIC] = machine.fabric_bytes_per_s
        raw_flop = {d: e for d in DType if (e := p.j_per_flop(d)) is not None}
        rates = {d: r for d in raw_flop if (r := machine.native_rate(d)) is not None}
        if not rates:
            raise ValueError(f"{machine.name}: power.compute_j_per_flop names no format the machine computes in")
        memory_w = sum(peak[u] * raw_bytes[u] for u in peak)
        busiest_w = max(rates[d] * raw_flop[d] for d in rates) + memory_w
        scale = (p.tdp_w - p.static_w) / busiest_w
        return cls(machine.name, p.tdp_w, p.static_w, scale,
                   {d: e * scale for d, e in raw_flop.items()}, {u: e * scale for u, e in raw_bytes.items()},
                   peak, rates)

    def flop_j(self, dtype: DType) -> float:
        """Energy of one FLOP in ``dtype``: its own figure; fp16 as bf16 (the same tensor
        units) when not given; otherwise the costliest given (an upper bound)."""
        e = self.j_per_flop.get(dtype)
        if e is None and dtype == DType.FP16:
            e = self.j_per_flop.get(DType.BF16)
        return e if e is not None else max(self.j_per_flop.values())

    def dynamic_j(self, a: Activity) -> float:
        e = a.flops * self.flop_j(a.dtype) if a.flops else 0.0
        for u, b in a.bytes.items():
            e += b * self.j_per_byte.get(u, 0.0)
        return e

    def energy_j(self, a: Activity) -> float:
        """Static power over the activity's time plus its dynamic energy."""
        return self.static_w * a.seconds + self.dynamic_j(a)

    def busy(self, dtype: Optional[DType] = None, seconds: float = 1.0) -> Activity:
        """Every unit at its peak for ``seconds`` (tensor units in ``dtype``, by default the
        format that draws the most)."""
        if dtype is None:
            dtype = max(self.peak_flops_per_s, key=lambda d: self.peak_flops_per_s[d] * self.j_per_flop[d])
        return Activity(seconds, self.peak_flops_per_s[dtype] * seconds, dtype,
                        {u: r * seconds for u, r in self.peak_bytes_per_s.items()})

    def derived(self) -> dict[str, float]:
        """What ``rdusim arch show`` prints of the model."""
        out = {"power.scale": self.scale, "power.dynamic_w_at_peak": self.tdp_w - self.static_w}
        for d, e in self.j_per_flop.items():
            out[f"power.{d.value}_pj_per_flop_scaled"] = e * 1e12
        for u, e in self.j_per_byte.items():
            out[f"power.{u.value}_pj_per_byte_scaled"] = e * 1e12
        return out


def with_costs(machine: Any) -> dict[str, float]:
    """``machine.derived()`` plus what its price and power blocks imply (``rdusim arch show``):
    the node price per hour and the calibrated power model."""
    out = dict(machine.derived())
    node = machine.price_per_node_hour_usd
    if node is not None:
        out["price.per_node_hour_usd"] = node
    model = EnergyModel.of(machine)
    if model is not None:
        out.update(model.derived())
    return out
