"""What a machine costs to rent and to run: the ``price:`` and ``power:`` blocks of an arch
file, shared by every family's schema (one implementation, :class:`CostBlocks`).

``price:`` (per device-hour, what a cloud rents one socket/GPU/chip for)::

    price:
      per_device_hour_usd: {value: 2.1, source: "CUDO Compute, 2024, per GPU-hour"}
      per_node_hour_usd: {value: ..., source: ...}     # optional: a whole-node price

A machine with no published price has no ``price:`` block; studies then report no dollars
for it (and say so). A node costs its devices x the device price unless the file gives a
node price.

``power:`` (one device; rdusim.energy turns activity into joules)::

    power:
      tdp_w:     {value: 700, source: "NVIDIA H100 SXM5 datasheet: max TDP 700 W"}
      static_w:  {value: 90, source: "assumed: ..."}
      compute_j_per_flop: {bf16: {value: .., source: ..}, fp8_e4m3: {...}}
      hbm_j_per_byte:       {value: .., source: ..}
      spill_j_per_byte:     {value: .., source: ..}   # the spill tier (the SN40L's DDR); optional
      fabric_j_per_byte:    {value: .., source: ..}   # NVLink / P2P / ICI; optional
      host_link_j_per_byte: {value: .., source: ..}   # PCIe to the host

The per-unit energies are published per-access figures (or declared assumptions); rdusim
scales them by one factor per device so that every unit busy at its peak for a second
draws ``tdp_w - static_w`` (:class:`rdusim.energy.EnergyModel`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

from rdusim.config.strict import positive
from rdusim.graph.tensor import DType


@dataclass(frozen=True)
class PriceSpec:
    """Rental price of the machine, US dollars per hour."""

    per_device_hour_usd: Optional[float] = field(default=None, metadata=positive())
    per_node_hour_usd: Optional[float] = field(default=None, metadata=positive())

    def __post_init__(self) -> None:
        if self.per_device_hour_usd is None and self.per_node_hour_usd is None:
            raise ValueError("per_device_hour_usd", "a device or a node price (or no price block)", "neither")


@dataclass(frozen=True)
class PowerSpec:
    """Power of one device: static (idle) power and dynamic energy per unit of activity."""

    tdp_w: float = field(metadata=positive())
    static_w: float = field(metadata={"ge": 0})
    compute_j_per_flop: Mapping[str, float]
    hbm_j_per_byte: float = field(metadata={"ge": 0})
    host_link_j_per_byte: float = field(metadata={"ge": 0})
    spill_j_per_byte: Optional[float] = field(default=None, metadata={"ge": 0})
    fabric_j_per_byte: Optional[float] = field(default=None, metadata={"ge": 0})

    def __post_init__(self) -> None:
        if self.static_w >= self.tdp_w:
            raise ValueError("static_w", f"less than tdp_w ({self.tdp_w:g})", self.static_w)
        formats = [d.value for d in DType]
        for name, e in self.compute_j_per_flop.items():
            if name not in formats:
                raise ValueError(f"compute_j_per_flop.{name}", f"a number format, one of {formats}", name)
            if not e > 0:
                raise ValueError(f"compute_j_per_flop.{name}.value", "a number > 0", e)
        if not self.compute_j_per_flop:
            raise ValueError("compute_j_per_flop", "an energy for at least one number format", "none")

    def j_per_flop(self, dtype: DType) -> Optional[float]:
        return self.compute_j_per_flop.get(dtype.value)


@dataclass(frozen=True)
class CostBlocks:
    """The ``price:`` and ``power:`` blocks every family's schema inherits (keyword-only, so
    they may follow a schema's required fields), with the machine interface's answers."""

    price: Optional[PriceSpec] = field(default=None, kw_only=True)
    power: Optional[PowerSpec] = field(default=None, kw_only=True)

    @property
    def price_per_device_hour_usd(self) -> Optional[float]:
        """One device's rental price per hour (a node price split over its devices when only
        that is given); None: no published price."""
        p = self.price
        if p is None:
            return None
        if p.per_device_hour_usd is not None:
            return p.per_device_hour_usd
        return p.per_node_hour_usd / self.devices_per_node       # type: ignore[attr-defined]

    @property
    def price_per_node_hour_usd(self) -> Optional[float]:
        """The node's price per hour: the file's node price, else devices x device price."""
        p = self.price
        if p is None:
            return None
        if p.per_node_hour_usd is not None:
            return p.per_node_hour_usd
        return p.per_device_hour_usd * self.devices_per_node     # type: ignore[attr-defined]
