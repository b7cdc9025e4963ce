"""Chrome / Perfetto timeline of SN40L steps, built with :class:`rdusim.report.trace.TraceBuilder`
(numeric pids and tids, named by metadata events; the engine builds events, never writes them).

Processes: ``<device>/host`` and one ``<device>/socket<i>`` per traced socket (the sockets of
a TP group run the same kernels at the same times). Threads:

- host: ``steps`` (one span per traced step, named by its label, when it has one),
  ``launch`` (software orchestration: the host launching each kernel; hardware
  orchestration: the host handing the step's schedule to the AGCUs, once) and ``runtime``
  (the per-step runtime work after the last kernel).
- socket: ``compute`` (one span per kernel), ``launch`` (hardware orchestration: the AGCUs
  starting each kernel), ``hbm`` / ``ddr`` / ``host link`` (each memory channel from the
  kernel's first to its last transfer on it, with bytes moved and busy time),
  ``p2p link`` / ``d2d link`` (the socket's P2P port and the die-to-die link), and one
  ``stage <op>`` thread per pipeline stage (from its first tile's start to its last
  tile's end; named by the op without its ``L<i>.`` layer prefix, so every layer's
  ``attn.qkv`` stage is on one thread).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from rdusim.compiler.plan import Plan
from rdusim.config.policy import LaunchMode
from rdusim.engine.rdu.launch import Schedule
from rdusim.engine.rdu.pipeline import KernelRun
from rdusim.tracing import Lane, TraceBuilder

CHANNEL_LANES = {"hbm": "hbm", "ddr": "ddr", "host": "host link", "p2p": "p2p link", "d2d": "d2d link"}
_LAYER = re.compile(r"L\d+\.")


@dataclass(frozen=True)
class StepTrace:
    """Where a step's spans go: ``builder``, under processes named ``device/...``, for
    ``sockets`` sockets, shifted to start at ``start_s``, labelled ``label`` on the host."""

    builder: TraceBuilder
    device: str
    sockets: int = 1
    start_s: float = 0.0
    label: str = ""


def stage_lane(op: str) -> str:
    m = _LAYER.match(op)
    return "stage " + (op[m.end():] if m else op)


def add_step(tr: StepTrace, plan: Plan, runs: Sequence[KernelRun], sched: Schedule, launch: LaunchMode) -> None:
    """Spans of one simulated step (its plan, kernel runs and launch schedule)."""
    tb, t0 = tr.builder, tr.start_s
    host = f"{tr.device}/host"
    if tr.label:
        tb.span(tr.label, t0, sched.end_s, device=host, lane="steps", cat="step", kernels=len(plan.kernels))
    slots = sched.slots
    if launch == LaunchMode.HARDWARE and slots and slots[0].launch_start_s > 0:
        tb.span("hand schedule to AGCUs", t0, slots[0].launch_start_s, device=host, lane=Lane.LAUNCH, cat="launch")
    elif launch == LaunchMode.SOFTWARE:
        for k, slot in zip(plan.kernels, slots):
            tb.span(f"launch {k.name}", t0 + slot.launch_start_s, slot.start_s - slot.launch_start_s,
                    device=host, lane=Lane.LAUNCH, cat="launch")
    for socket in range(tr.sockets):
        _socket_spans(tb, f"{tr.device}/socket{socket}", t0, plan, runs, sched, launch)
    if sched.host_s:
        tb.span("runtime step overhead", t0 + sched.kernels_end_s, sched.host_s, device=host, lane="runtime",
                cat="host")


def _socket_spans(tb: TraceBuilder, dev: str, t0: float, plan: Plan, runs: Sequence[KernelRun], sched: Schedule,
                  launch: LaunchMode) -> None:
    pid = tb.process(dev)
    used = {c for run in runs for c in run.channel_window_s}
    for lane in [Lane.COMPUTE] + [lane for c, lane in CHANNEL_LANES.items() if c in used]:
        tb.thread(pid, lane)                 # kernels, then memory and links, then the stages
    for k, run, slot in zip(plan.kernels, runs, sched.slots):
        start = t0 + slot.start_s
        if launch == LaunchMode.HARDWARE:
            tb.span(f"launch {k.name}", t0 + slot.launch_start_s, slot.start_s - slot.launch_start_s, device=dev,
                    lane=Lane.LAUNCH, cat="launch")
        tb.span(k.name, start, run.duration_s, device=dev, lane=Lane.COMPUTE, cat="kernel", flops=k.flops,
                hbm_bytes=run.bytes_by_tier.get("hbm", 0.0), pcus=k.pcus, pmus=k.pmus, passes=k.passes)
        for channel, (a, b) in run.channel_window_s.items():
            moved = {"p2p": run.p2p_bytes, "d2d": run.d2d_bytes}.get(channel, run.bytes_by_tier.get(channel, 0.0))
            memory = channel in run.tier_busy_s
            args = {"bytes": moved, "busy_s": run.tier_busy_s[channel]} if memory else {"bytes": moved}
            tb.span(f"{k.name} {channel}", start + a, b - a, device=dev, lane=CHANNEL_LANES[channel],
                    cat="memory" if memory else "link", **args)
        for op, stage, busy, (a, b) in zip(k.ops, k.stages, run.stage_busy_s, run.stage_window_s):
            tb.span(op, start + a, b - a, device=dev, lane=stage_lane(op), cat=stage.kind.value,
                    pcus=stage.pcus, pmus=stage.pmus, busy_s=busy)
