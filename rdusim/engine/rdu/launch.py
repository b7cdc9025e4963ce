"""Kernel launch orchestration for one step, in SimPy.

SOFTWARE (SO): a host process launches every kernel. It learns that kernel k-1 has
finished, spends ``launch.software_s`` plus ``launch.software_per_stream_s`` for each of
kernel k's off-chip streams (the address programs it sets up) launching kernel k, and
only then can k start.
HARDWARE (HO): the host launches the step's static schedule once (one software launch);
the AGCUs then start each next kernel ``launch.hardware_s`` after the previous ends.
After the last kernel of a model step the host spends ``host_s``: the serving stack's
per-step work (sampling, scheduling; :mod:`rdusim.engine.host_runtime`), none for bare kernels.
The gaps between kernels are what these processes produce.

Loading a program (:func:`argument_load_s`): a model's compiled programs stay resident in
device memory once loaded (the arch's DDR reserve holds them), so when the node switches to
another model the host writes only that model's argument tables -- one descriptor of
``launch.argument_bytes_per_stream`` per off-chip stream of every kernel launch of the step
-- over each socket's host link (all sockets at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


from rdusim.config.arch_rdu import RduArch
from rdusim.config.policy import LaunchMode
from rdusim.engine.evaluation import Evaluation, current
from rdusim.errors import InputError


@dataclass(frozen=True)
class Slot:
    launch_start_s: float    # when the launcher began launching this kernel
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Schedule:
    slots: tuple[Slot, ...]
    kernels_end_s: float
    end_s: float             # step end, host overhead included
    host_s: float


def argument_load_s(arch: RduArch, kernels: Sequence) -> float:
    """Writing the argument tables of ``kernels`` (a step's launches) to a socket over its
    host link: one latency plus the descriptors' bytes at the link's bandwidth."""
    nbytes = sum(k.streams for k in kernels) * arch.launch.argument_bytes_per_stream
    return arch.links.pcie.transfer_time_s(nbytes)


def run_schedule(durations: Sequence[float], mode: LaunchMode, arch: RduArch,
                 streams: Sequence[int] | None = None, *, host_s: float = 0.0) -> Schedule:
    """Orchestrate kernels of the given durations (and off-chip stream counts) in order;
    ``host_s``: the runtime's host work after the last kernel (a model step's sampling).
    The closed form of :func:`run_schedule_events` (bit-identical), or the events under
    ``evaluation.reference()``."""
    if mode not in RduArch.LAUNCH_MODES:
        raise InputError("workload", "launch", "so or ho for an RDU platform", mode.value)
    if current() == Evaluation.EVENTS:
        return run_schedule_events(durations, mode, arch, streams, host_s=host_s)
    n = len(durations)
    sw, hw = arch.launch.software_s, arch.launch.hardware_s
    per_stream = arch.launch.software_per_stream_s
    streams = list(streams) if streams is not None else [0] * n
    launch_start, start, end = [0.0] * n, [0.0] * n, [0.0] * n
    # The launcher starts kernel k when k-1 ends (k = 0: at once; HO: after handing the
    # schedule over), the device starts it when it is launched and ends it after its
    # duration: one process waits on the other in turn, so the times chain.
    t = 0.0 if mode == LaunchMode.SOFTWARE or not n else 0.0 + sw
    for k in range(n):
        if k:
            t = end[k - 1]
        launch_start[k] = t
        start[k] = t + (sw + per_stream * streams[k] if mode == LaunchMode.SOFTWARE else hw)
        end[k] = start[k] + durations[k]
    kernels_end = end[-1] if n else 0.0
    now = kernels_end
    if host_s > 0:
        now = kernels_end + host_s
    slots = tuple(Slot(a, b, c) for a, b, c in zip(launch_start, start, end))
    return Schedule(slots, kernels_end, now, now - kernels_end)


def run_schedule_events(durations: Sequence[float], mode: LaunchMode, arch: RduArch,
                        streams: Sequence[int] | None = None, *, host_s: float = 0.0) -> Schedule:
    """The launch schedule as SimPy processes (the reference of :func:`run_schedule`)."""
    import simpy     # the reference only: a run evaluates the closed form without SimPy

    if mode not in RduArch.LAUNCH_MODES:
        raise InputError("workload", "launch", "so or ho for an RDU platform", mode.value)
    env = simpy.Environment()
    n = len(durations)
    launched = [env.event() for _ in range(n)]
    done = [env.event() for _ in range(n)]
    launch_start = [0.0] * n
    start = [0.0] * n
    end = [0.0] * n
    sw, hw = arch.launch.software_s, arch.launch.hardware_s
    per_stream = arch.launch.software_per_stream_s
    streams = list(streams) if streams is not None else [0] * n

    def host_so():
        for k in range(n):
            if k:
                yield done[k - 1]
            launch_start[k] = env.now
            yield env.timeout(sw + per_stream * streams[k])
            launched[k].succeed()

    def agcu_ho():
        if n:
            yield env.timeout(sw)            # the host hands the schedule to the AGCUs once
        for k in range(n):
            if k:
                yield done[k - 1]
            launch_start[k] = env.now
            yield env.timeout(hw)
            launched[k].succeed()

    def device():
        for k in range(n):
            yield launched[k]
            start[k] = env.now
            yield env.timeout(durations[k])
            end[k] = env.now
            done[k].succeed()

    env.process(host_so() if mode == LaunchMode.SOFTWARE else agcu_ho())
    dev = env.process(device())
    env.run(dev)
    kernels_end = env.now
    if host_s > 0:
        env.run(env.timeout(host_s))
    slots = tuple(Slot(a, b, c) for a, b, c in zip(launch_start, start, end))
    return Schedule(slots, kernels_end, env.now, env.now - kernels_end)
