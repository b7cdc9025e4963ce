"""Words for a sweep plot's axes: a swept key or a metric key as a name and a unit.

``arch.sn40l.socket.ddr.bandwidth_bytes_per_s`` -> ``sn40l DDR bandwidth`` in ``bytes/s``;
``coe.*.bs8.tok20.latency_s`` -> ``latency`` in ``s``; ``experts.count`` -> ``experts count``.
The unit comes from the key's own suffix (the project writes units into key names); the
exact dotted key stays in the plot's title and in its CSV."""

from __future__ import annotations

from typing import Any

# key suffix -> unit, longest first
_UNITS = (("_bytes_per_s", "bytes/s"), ("_flops_per_byte", "FLOP/byte"), ("_flops_per_s", "FLOP/s"),
          ("_per_s", "per s"), ("_bytes", "bytes"), ("_hz", "Hz"), ("_util", "fraction"), ("_s", "s"))
_ACRONYMS = {"ddr", "hbm", "sram", "pcu", "pmu", "agcu", "kv", "tp", "pp", "slo", "ttft", "tpot", "e2e", "oi",
             "sm", "gpu", "rdu", "cpu", "dram", "nic", "p2p", "so", "ho", "fp8", "int8", "int4", "bf16"}


def words(segment: str) -> str:
    """One key segment as words: underscores to spaces, acronyms in capitals."""
    return " ".join(w.upper() if w in _ACRONYMS else w for w in segment.split("_") if w)


def split_unit(segment: str) -> tuple[str, str]:
    """(name, unit) of a key's last segment; unit '' when the key names none."""
    for suffix, unit in _UNITS:
        if segment.endswith(suffix) and len(segment) > len(suffix):
            return segment[: -len(suffix)], unit
    return segment, ""


def key_name(key: str) -> tuple[str, str]:
    """(name, unit) of a swept key: its last two segments as words, the platform first
    for an arch key (``arch.<platform>.<path>``)."""
    parts = key.split(".")
    platform = ""
    if parts[0] == "arch" and len(parts) > 2:
        platform, parts = parts[1], parts[2:]
    leaf, unit = split_unit(parts[-1])
    name = " ".join([words(p) for p in parts[-2:-1]] + [words(leaf)])
    return (f"{platform} {name}" if platform else name), unit


def metric_name(metric: str) -> tuple[str, str]:
    """(name, unit) of a metric key or glob: its last segment; speedups are ratios (x) and
    ``.oom`` a 0/1 flag."""
    parts = metric.split(".")
    last = parts[-1]
    if last == "oom":
        return "out of memory", "1 = yes"
    if "speedup" in parts:
        if last == "speedup":
            return "speedup", "x"
        return (last.replace("_vs_", " vs ") if "_vs_" in last else words(last)) + " speedup", "x"
    if last.endswith("_rate") or last.endswith("_bubble"):
        return words(last), "fraction"
    leaf, unit = split_unit(last)
    return (words(leaf) or last) + (" utilisation" if last.endswith("_util") else ""), unit


def label(name_unit: tuple[str, str]) -> str:
    name, unit = name_unit
    return f"{name} ({unit})" if unit else name


def value_text(key: str, value: Any) -> str:
    """``<name> = <value> <unit>`` for a legend entry or a held value."""
    name, unit = key_name(key)
    v = f"{value:.4g}" if isinstance(value, float) else str(value)
    return f"{name} = {v}" + (f" {unit}" if unit and unit != "fraction" else "")


def series_names(metrics: list[str]) -> list[str]:
    """Legend names for metrics matched by one glob: the segments in which they differ."""
    split = [m.split(".") for m in metrics]
    if len(metrics) < 2 or len({len(s) for s in split}) != 1:
        return list(metrics)
    differ = [i for i in range(len(split[0])) if len({s[i] for s in split}) > 1]
    return [", ".join(s[i] for i in differ) for s in split]

