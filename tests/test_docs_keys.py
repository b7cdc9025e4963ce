"""docs/results.md describes every key family results.json holds.

The document's key tables (a header whose first column is ``key``) list each family as a
pattern in backticks (section "Key patterns" there): ``<name>`` one segment or part of one,
``<a\\|b>`` one of the words, ``[...]`` optional, ``<key>`` any dotted key, and a pattern
starting with ``.`` repeats the row's previous one with its last segment(s) replaced. Each
shipped workload runs here (made cheap with --set) and every metric key and top-level
``extra`` key must match a pattern of its kind's section or of a section of no kind.
To document a new family: one more table row in its kind's section of docs/results.md."""

import json
import re
from pathlib import Path

import pytest
import yaml

from rdusim.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "results.md"
_KIND = re.compile(r"^## .*\(`kind: (\w+)`\)")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")

# cheap versions of each kind's workloads: fewer requests, batches and expert counts,
# every key family still written (main point and two load points, the expert-count sweep
# with an OOM point, the footprint, the capacity search)
CHEAP = {
    "coe": ["replications=2", "batches=3", "warmup_batches=1", "sweep_batches=3", "sweep_experts=[10,1000]"],
    "serve": ["requests=40", "warmup_requests=5", "sweep_requests=30", "trace_requests=5",
              "capacity.requests=30", "capacity.iterations=2"],
    "fusion": [],
    "model": [],
    "finetune": ["quadrature_points=1", "max_batch=4",
                 "datasets={tiny: {queries: 100, median_tokens: 32, sigma: 0.5, max_tokens: 64}}"],
}


def segments(pattern: str) -> list[str]:
    """A pattern's dot-separated segments; dots inside <...> or [...] do not split."""
    out, depth, cur = [], 0, ""
    for ch in pattern:
        if ch in "<[":
            depth += 1
        elif ch in ">]":
            depth -= 1
        if ch == "." and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return out + [cur]


def to_regex(pattern: str) -> re.Pattern:
    def part(text: str) -> str:
        out, i = "", 0
        while i < len(text):
            ch = text[i]
            if ch == "<":
                j = text.index(">", i)
                body = text[i + 1:j].replace("\\|", "|")
                if body == "key":
                    out += r".+"
                elif "|" in body:
                    out += "(?:" + "|".join(re.escape(w) for w in body.split("|")) + ")"
                else:
                    out += r"[^.]+"
                i = j + 1
            elif ch == "[":
                j = text.index("]", i)
                out += "(?:" + part(text[i + 1:j]) + ")?"
                i = j + 1
            else:
                out += re.escape(ch)
                i += 1
        return out

    return re.compile(part(pattern) + r"\Z")


def row_patterns(first_cell: str) -> list[str]:
    """The full patterns of one table row's first cell (short forms resolved)."""
    out: list[str] = []
    for p in re.findall(r"`([^`]+)`", first_cell):
        if p.startswith(".") and out:
            tail = segments(p[1:])
            p = ".".join(segments(out[-1])[: -len(tail)] + tail)
        out.append(p)
    return out


def documented(text: str) -> dict:
    """kind (None: every kind) -> [(pattern, regex)] from the document's key tables."""
    found: dict = {}
    kind, in_keys = None, False
    for line in text.splitlines():
        if line.startswith("## "):
            m = _KIND.match(line)
            kind, in_keys = (m.group(1) if m else None), False
            continue
        if not line.startswith("|"):
            in_keys = False
            continue
        first = _CELL_SPLIT.split(line)[1].strip()
        if first == "key":
            in_keys = True
            continue
        if in_keys and not set(first) <= set("-: "):
            found.setdefault(kind, []).extend((p, to_regex(p)) for p in row_patterns(first))
    return found


PATTERNS = documented(DOC.read_text(encoding="utf-8"))


def undocumented(kind: str, keys) -> list[str]:
    pats = PATTERNS.get(None, []) + PATTERNS.get(kind, [])
    return sorted(k for k in keys if not any(rx.match(k) for _, rx in pats))


def test_patterns_read_as_written():
    assert row_patterns("`serve.<P>.<M>.little.in_system_mean`, `.little.arrival_rate_per_s`") == [
        "serve.<P>.<M>.little.in_system_mean", "serve.<P>.<M>.little.arrival_rate_per_s"]
    assert row_patterns("`coe.<P>.bs<B>.tok<T>.experts<N>.latency_s`, `.hit_rate`") == [
        "coe.<P>.bs<B>.tok<T>.experts<N>.latency_s", "coe.<P>.bs<B>.tok<T>.experts<N>.hit_rate"]
    rx = to_regex(r"serve.<P>.<M>[.load<i>].kv_occupancy.<mean\|max>")
    assert rx.match("serve.sn40l.continuous.kv_occupancy.max")
    assert rx.match("serve.dgx_h100.static.load3.kv_occupancy.mean")
    assert not rx.match("serve.sn40l.continuous.kv_occupancy.p50")
    assert not rx.match("serve.sn40l.continuous.kv_occupancy.max.extra")
    assert not to_regex("model.<P>.latency_s").match("model.sn40l.spec.latency_s")    # one segment per <P>
    assert to_regex("coe.footprint.<P>.nodes_for<N>").match("coe.footprint.dgx_a100.nodes_for150")
    assert to_regex("<key>.ci95_low").match("coe.speedup.a_vs_b.bs1.tok20.overall.ci95_low")
    text = ("## X (`kind: serve`)\n\n| key | meaning |\n|---|---|\n| `serve.a`, `.b` | m \\| n |\n\n"
            "| file | x |\n|---|---|\n| `f.json` | y |\n")
    assert [p for p, _ in documented(text)["serve"]] == ["serve.a", "serve.b"]
    assert None not in documented(text)           # only tables whose first column is "key"


def test_the_families_the_issue_found_missing_are_documented():
    examples = {"fusion": ["fusion.b.dgx_h100.fused.time_s", "fusion.b.dgx_h100.unfused.sm_util",
                           "fusion.b.dgx_h100.speedup.fused_vs_unfused", "extra.largest_fused_kernel"],
                "model": ["model.sn40l.spec.memory.kv_bytes", "model.sn40l_x2.pp.memory.hbm_used_bytes",
                          "extra.formats", "extra.clusters"],
                "serve": ["serve.step_cache.misses", "extra.stacks", "extra.coe", "extra.scheduler"]}
    for kind, keys in examples.items():
        assert undocumented(kind, keys) == [], kind
    assert ".rdusim.lock" in DOC.read_text(encoding="utf-8")      # the folder lock (rdusim/outdir.py)


def test_an_unknown_family_is_caught():
    assert undocumented("model", ["model.sn40l.latency_s", "model.sn40l.brand_new_s", "extra.surprise"]) == [
        "extra.surprise", "model.sn40l.brand_new_s"]


def _workloads() -> list[Path]:
    out = []
    for f in sorted((ROOT / "workloads").glob("*.yaml")):
        data = yaml.safe_load(f.read_text(encoding="utf-8"))
        # sweep files run these same workloads; plan files run under rdusim plan (tests/test_fleet.py checks its keys)
        if isinstance(data, dict) and "sweep" not in data and data.get("kind") != "plan":
            out.append(f)
    return out


@pytest.mark.parametrize("workload", _workloads(), ids=lambda p: p.stem)
def test_every_key_a_shipped_workload_writes_is_documented(tmp_path, workload, capsys):
    kind = yaml.safe_load(workload.read_text(encoding="utf-8"))["kind"]
    args = ["run", str(workload), "--out", str(tmp_path), "--jobs", "1"]
    for s in CHEAP[kind]:
        args += ["--set", s]
    assert main(args) == 0, capsys.readouterr().err
    data = json.loads((tmp_path / "results.json").read_text())
    keys = list(data["metrics"]) + [f"extra.{k}" for k in data["extra"]]
    missing = undocumented(kind, keys)
    assert not missing, (f"{len(missing)} key(s) of {workload.name} match no pattern in docs/results.md "
                         f"(add a table row to its '{kind}' section): " + ", ".join(missing[:20]))
