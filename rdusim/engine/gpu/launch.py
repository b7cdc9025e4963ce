"""The host thread and the GPU stream, in SimPy.

The host spends ``host_ready_s`` on framework work (scheduling, sampling), then
issues kernels one after another, each costing ``launch_cost_s`` of CPU time
(eager launch or CUDA-graph replay). The GPU runs issued kernels in order.
While kernels are longer than a launch the host runs ahead and launch cost is
hidden; when they are shorter the GPU waits for the host and the wait is
exposed launch time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


from rdusim.config.arch_gpu import GpuArch
from rdusim.config.policy import LaunchMode
from rdusim.engine.evaluation import Evaluation, current


@dataclass(frozen=True)
class StreamTimeline:
    issue_s: tuple[float, ...]      # when the host finished launching each kernel
    start_s: tuple[float, ...]      # when the GPU started it
    end_s: tuple[float, ...]
    exposed_s: tuple[float, ...]    # GPU idle time before each kernel, waiting for the host

    @property
    def end(self) -> float:
        return self.end_s[-1] if self.end_s else 0.0

    @property
    def exposed_total_s(self) -> float:
        return sum(self.exposed_s)


def launch_cost_s(arch: GpuArch, mode: LaunchMode) -> float:
    if mode == LaunchMode.CUDA_EAGER:
        return arch.launch.eager_s
    if mode == LaunchMode.CUDA_GRAPH:
        return arch.launch.graph_s
    raise ValueError(f"launch mode {mode.value!r} is not a GPU launch mode (use 'eager' or 'graph')")


def run_stream(durations: Sequence[float], launch_cost: float, host_ready_s: float = 0.0) -> StreamTimeline:
    """One host thread launching ``durations`` into one stream: the closed form of
    :func:`run_stream_events` (bit-identical), or the events under ``evaluation.reference()``."""
    if current() == Evaluation.EVENTS:
        return run_stream_events(durations, launch_cost, host_ready_s)
    return stream_closed_form(durations, launch_cost, host_ready_s)


def stream_closed_form(durations: Sequence[float], launch_cost: float, host_ready_s: float = 0.0) -> StreamTimeline:
    """The events of :func:`run_stream_events` as a recurrence. The host issues kernel i
    at ``host_ready + (i+1) x launch_cost`` (added one launch at a time, as the clock
    advances); the GPU, which starts at time 0, takes it at the later of its issue and the
    previous kernel's end (a queue get succeeds at once if an item is there, else at the
    put), and ends it ``duration`` later; no other process touches either time."""
    n = len(durations)
    issue = [0.0] * n
    t = 0.0 + host_ready_s if host_ready_s > 0 else 0.0
    for i in range(n):
        if launch_cost > 0:
            t = t + launch_cost
        issue[i] = t
    start = [0.0] * n
    end = [0.0] * n
    exposed = [0.0] * n
    prev, free_at = 0.0, host_ready_s
    for i in range(n):
        s = issue[i] if issue[i] > prev else prev
        start[i] = s
        exposed[i] = max(0.0, s - free_at)
        d = durations[i]
        prev = free_at = end[i] = s + d if d > 0 else s
    return StreamTimeline(tuple(issue), tuple(start), tuple(end), tuple(exposed))


def run_stream_events(durations: Sequence[float], launch_cost: float, host_ready_s: float = 0.0) -> StreamTimeline:
    """Simulate one host thread launching ``durations`` into one stream (SimPy; the reference)."""
    import simpy     # the reference only: a run evaluates the closed form without SimPy

    env = simpy.Environment()
    queue = simpy.Store(env)
    n = len(durations)
    issue = [0.0] * n
    start = [0.0] * n
    end = [0.0] * n
    exposed = [0.0] * n

    def host():
        if host_ready_s > 0:
            yield env.timeout(host_ready_s)
        for i in range(n):
            if launch_cost > 0:
                yield env.timeout(launch_cost)
            issue[i] = env.now
            queue.put(i)

    def gpu():
        free_at = host_ready_s      # the GPU could start once the framework work is done
        for _ in range(n):
            i = yield queue.get()
            start[i] = env.now
            exposed[i] = max(0.0, env.now - free_at)
            if durations[i] > 0:
                yield env.timeout(durations[i])
            end[i] = free_at = env.now

    env.process(host())
    env.process(gpu())
    env.run()
    return StreamTimeline(tuple(issue), tuple(start), tuple(end), tuple(exposed))
