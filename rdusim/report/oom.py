"""Out-of-memory results with their reasons, for the terminal and the report.

A study records ``<prefix>.oom = 1`` in the metrics and, where it knows one, the reason in
``extra.oom_reasons[<prefix>]``. Rows with the same reason are listed together."""

from __future__ import annotations

from typing import Any, Mapping

NO_REASON = "no reason recorded by the study"


def oom_reasons(metrics: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, list[str]]:
    """reason -> the result prefixes (``coe.sn40l.bs1.tok20.experts1000``) out of memory for it."""
    reasons = extra.get("oom_reasons") if isinstance(extra, Mapping) else None
    reasons = reasons if isinstance(reasons, Mapping) else {}
    out: dict[str, list[str]] = {}
    for key, value in sorted(metrics.items()):
        if key.endswith(".oom") and value == 1:
            prefix = key[: -len(".oom")]
            out.setdefault(str(reason_of(prefix, reasons)), []).append(prefix)
    return out


def reason_of(prefix: str, reasons: Mapping[str, Any]) -> Any:
    """The reason recorded for a metric prefix. Studies key reasons by the prefix itself
    (coe), or by the part after the kind naming the platform (model: ``sn40l``; fusion:
    ``<bench>.<platform>``); the first RDU's un-prefixed fusion keys share its reason."""
    if prefix in reasons:
        return reasons[prefix]
    parts = prefix.split(".")[1:]
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in reasons:
            return reasons[".".join(parts[:n])]
    same = {str(v) for k, v in reasons.items() if parts and k.split(".")[0] == parts[0]}
    return same.pop() if len(same) == 1 else NO_REASON


def oom_lines(metrics: Mapping[str, Any], extra: Mapping[str, Any], *, max_keys: int = 4) -> list[str]:
    """One line per distinct reason: the reason, then the rows it applies to."""
    lines = []
    for reason, keys in oom_reasons(metrics, extra).items():
        shown = ", ".join(keys[:max_keys]) + (f" and {len(keys) - max_keys} more" if len(keys) > max_keys else "")
        lines.append(f"{reason}: {shown}")
    return lines
