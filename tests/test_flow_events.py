"""The callback-driven FlowNetwork (and the serving that runs on it) is the process formulation it replaced, bit for bit.

``_ProcessNetwork`` below is the FlowNetwork as it was written before issue 14: one SimPy
process per transfer, one per wake-up, max-min rates re-solved flow by flow on every
change, ``simpy.AllOf`` over an expert's shards. The new network schedules the same
events at the same points of SimPy's order (a transfer's start where the process's
initialisation was, its latency timeout, the rate update, the wake-up, each landing), so
on random flows -- round numbers, so that starts, ends and wake-ups often coincide -- every
record, every link's byte count and the time are equal as floats, not just close.
"""

from __future__ import annotations

import math

import simpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rdusim.engine.maxmin import max_min_rates
from rdusim.engine.transfer import FlowNetwork


class _ProcessNetwork:
    """The pre-issue-14 FlowNetwork (rdusim/engine/transfer.py), trimmed of validation."""

    def __init__(self, env):
        self._env, self._bw, self._lat = env, {}, {}
        self._active, self.records, self._bytes = [], [], {}
        self._last, self._gen, self._seq, self._due = env.now, 0, 0, False

    def add_link(self, name, bw, lat=0.0):
        self._bw[name], self._lat[name], self._bytes[name] = float(bw), float(lat), 0.0

    @property
    def link_bytes(self):
        self._advance()
        return dict(self._bytes)

    def transfer(self, path, nbytes, label=""):
        done = self._env.event()
        flow = {"label": label, "path": tuple(path), "nbytes": float(nbytes), "start": self._env.now,
                "rem": float(nbytes), "rate": 0.0, "done": done, "seq": self._seq}
        self._seq += 1
        self._env.process(self._run(flow))
        return done

    def _run(self, f):
        latency = sum(self._lat[p] for p in f["path"])
        if latency > 0:
            yield self._env.timeout(latency)
        if f["nbytes"] <= 0:
            self._finish(f)
            return
        self._advance()
        self._active.append(f)
        if not self._due:
            self._due = True
            ev = self._env.event()
            ev.callbacks.append(self._rates_now)
            ev.succeed()

    def _rates_now(self, _):
        self._due = False
        self._advance()
        users = {}
        for f in self._active:
            f["rate"] = 0.0
            for n in f["path"]:
                users.setdefault(n, []).append(f)
        cap = {n: self._bw[n] for n in users}
        count = {n: len(fs) for n, fs in users.items()}
        frozen, left = set(), len(self._active)
        while left:
            best, best_share = None, math.inf
            for n in sorted(users):
                if count[n] and cap[n] / count[n] < best_share:
                    best, best_share = n, cap[n] / count[n]
            share = max(best_share, 0.0)
            for f in users[best]:
                if f["seq"] not in frozen:
                    f["rate"] = share
                    frozen.add(f["seq"])
                    left -= 1
                    for n in f["path"]:
                        cap[n] -= share
                        count[n] -= 1
        self._gen += 1
        if self._active:
            now = self._env.now
            end = min(now + f["rem"] / f["rate"] for f in self._active)
            self._env.process(self._wake(max(end - now, 0.0), self._gen))

    def _advance(self):
        dt = self._env.now - self._last
        if dt > 0:
            for f in self._active:
                moved = min(f["rem"], f["rate"] * dt)
                f["rem"] -= moved
                for n in f["path"]:
                    self._bytes[n] += moved
        self._last = self._env.now

    def _wake(self, delay, gen):
        yield self._env.timeout(delay)
        if gen != self._gen:
            return
        self._advance()
        tol = 1e-12 * max(self._env.now, 1e-9)
        ended = [f for f in self._active if f["rem"] / f["rate"] <= tol or f["rem"] <= f["nbytes"] * 1e-12]
        if not ended:
            ended = [min(self._active, key=lambda f: (f["rem"] / f["rate"], f["seq"]))]
        for f in ended:
            self._active.remove(f)
            for n in f["path"]:
                self._bytes[n] += f["rem"]
            f["rem"] = 0.0
        for f in sorted(ended, key=lambda f: f["seq"]):
            self._finish(f)
        if not self._due:
            self._due = True
            ev = self._env.event()
            ev.callbacks.append(self._rates_now)
            ev.succeed()

    def _finish(self, f):
        self.records.append((f["label"], f["path"], f["nbytes"], f["start"], self._env.now))
        f["done"].succeed(self.records[-1])


LINKS = {"a": (5e9, 1e-6), "b": (1e9, 0.0), "c": (2e10, 3e-5), "d": (4e9, 0.0), "e": (4e9, 2e-6)}
numbers = lambda lo, hi, round_values: st.one_of(st.sampled_from(round_values), st.floats(lo, hi))  # noqa: E731
transfers = st.lists(st.tuples(
    st.lists(st.sampled_from(sorted(LINKS)), min_size=1, max_size=4, unique=True),
    numbers(0.0, 1e10, [0.0, 1e9, 2e9, 4e9]), numbers(0.0, 2.0, [0.0, 0.0, 0.25, 0.5, 1.0]),
    st.integers(1, 3)), min_size=1, max_size=10)


def _drive(net_cls, spec, group: bool):
    """Start ``spec``'s transfers (each ``k`` at once along the path's rotations, as one group
    when ``group``; when they have landed, one more along the path reversed), while a process
    reads one link's bytes at round times: the records, every link's bytes, the readings,
    when each group landed and the end time."""
    env = simpy.Environment()
    net = net_cls(env)
    for name, (bw, lat) in LINKS.items():
        net.add_link(name, bw, lat)
    seen, landed = [], []

    def start(i, path, nbytes, at, k):
        yield env.timeout(at)
        paths = [tuple(path[j:] + path[:j]) for j in range(k)]
        labels = [f"t{i}.{j}" for j in range(k)]
        if group and isinstance(net, FlowNetwork):
            yield net.transfer_all(paths, nbytes, labels)
        else:
            yield simpy.AllOf(env, [net.transfer(p, nbytes, lab) for p, lab in zip(paths, labels)])
        landed.append((i, env.now))
        yield net.transfer(path[::-1], nbytes / 2, f"t{i}.then")     # a copy that starts as one lands
        landed.append((i, env.now))

    def reader():
        for _ in range(12):
            yield env.timeout(0.25)
            seen.append(dict(net.link_bytes)["a"])

    for i, (path, nbytes, at, k) in enumerate(spec):
        env.process(start(i, path, nbytes, at, k))
    env.process(reader())
    env.run()
    records = [tuple(r) for r in net.records]
    return records, dict(net.link_bytes), seen, landed, env.now


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(transfers, st.booleans())
def test_callback_network_is_the_process_network_bit_for_bit(spec, group):
    assert _drive(FlowNetwork, spec, group) == _drive(_ProcessNetwork, spec, group)


def test_transfer_all_lands_where_all_of_would():
    env = simpy.Environment()
    net = FlowNetwork(env)
    net.add_link("l", 1e9)
    net.add_link("m", 2e9)
    ev = net.transfer_all([("l",), ("m",)], 1e9, ["x", "y"])
    env.run(ev)
    assert env.now == 1.0 and [(r.label, r.end_s) for r in net.records] == [("y", 0.5), ("x", 1.0)]


def _per_flow(paths, counts, capacity):
    """Progressive filling flow by flow, in the given order (the old solver)."""
    flows = [p for p, n in zip(paths, counts) for _ in range(n)]
    cap, count = dict(capacity), {}
    for f in flows:
        for name in f:
            count[name] = count.get(name, 0) + 1
    rate, left = [None] * len(flows), len(flows)
    while left:
        best = min((cap[n] / count[n], n) for n in sorted(count) if count[n])
        for k, f in enumerate(flows):
            if rate[k] is None and best[1] in f:
                rate[k] = max(best[0], 0.0)
                left -= 1
                for name in f:
                    cap[name] -= rate[k]
                    count[name] -= 1
    return rate


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.lists(st.sampled_from("abcdef"), min_size=1, max_size=4, unique=True),
                          st.integers(0, 4)), min_size=1, max_size=6, unique_by=lambda t: tuple(t[0])),
       st.dictionaries(st.sampled_from("abcdef"), st.sampled_from([1e9, 3e9, 1e10, 7.3e9]), min_size=6))
def test_max_min_by_path_counts_is_flow_by_flow_filling(groups, capacity):
    paths, counts = [tuple(p) for p, _ in groups], [n for _, n in groups]
    rates = max_min_rates(paths, counts, capacity)
    expected = _per_flow(paths, counts, capacity)
    assert [r for r, n in zip(rates, counts) for _ in range(n)] == expected
    for name, bw in capacity.items():     # no link over its bandwidth (to rounding)
        assert sum(r * n for r, n, p in zip(rates, counts, paths) if name in p) <= bw * (1 + 1e-12)


def test_bytes_meter_reads_link_bytes_and_repeats_an_unchanged_reading():
    env = simpy.Environment()
    net = FlowNetwork(env)
    net.add_link("a", 1e9)
    net.add_link("b", 2e9)
    none, a, ba = net.bytes_meter([]), net.bytes_meter(["a"]), net.bytes_meter(["b", "a"])
    net.transfer(["a"], 1e9)
    env.run(0.5)
    assert (none(), a(), ba()) == ((), (5e8,), (0.0, 5e8))
    assert ba() is ba()                      # nothing moved since: the same reading
    env.run()
    assert a() == (1e9,) and ba() == (0.0, 1e9) == (net.link_bytes["b"], net.link_bytes["a"])
