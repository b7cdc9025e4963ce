"""One colour per platform name, the same in every plot and every report;
colours for fusion modes and time components."""

from __future__ import annotations

import zlib

_KNOWN = {
    "sn40l": "#e8710a",      # SambaNova orange
    "dgx_h100": "#3c8d2f",   # green
    "dgx_a100": "#1f5fa8",   # blue
}
_PALETTE = ("#8e44ad", "#c0392b", "#16a085", "#7f8c8d", "#d4a017",
            "#2c3e50", "#e84393", "#6d4c41", "#00838f", "#9e9d24")

MODE_COLORS = {"unfused": "#9e9e9e", "fused": "#76b7b2", "fused_so": "#4e79a7", "fused_ho": "#e8710a"}
MODE_LABELS = {"unfused": "unfused", "fused": "fused", "fused_so": "fused + SO", "fused_ho": "fused + HO"}
COMPONENT_HATCH = {"router": "", "switch": "///", "expert": ".."}
COMPONENT_ALPHA = {"router": 1.0, "switch": 0.75, "expert": 0.45}
BREAKDOWN_COLORS = {"compute": "#4e79a7", "memory": "#f28e2b", "launch": "#e15759",
                    "collective": "#76b7b2", "host": "#b07aa1"}


def platform_color(name: str) -> str:
    """Stable colour of a platform: fixed for the shipped ones, else hashed from
    the name, so a platform has the same colour in every plot of every report."""
    if name in _KNOWN:
        return _KNOWN[name]
    return _PALETTE[zlib.crc32(name.encode("utf-8")) % len(_PALETTE)]


def mode_color(mode: str) -> str:
    return MODE_COLORS.get(mode, _PALETTE[zlib.crc32(mode.encode("utf-8")) % len(_PALETTE)])


def breakdown_color(component: str) -> str:
    return BREAKDOWN_COLORS.get(component, _PALETTE[zlib.crc32(component.encode("utf-8")) % len(_PALETTE)])
