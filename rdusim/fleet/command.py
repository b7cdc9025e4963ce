"""``rdusim plan FILE``: the planning search, its table on stdout, and in the output folder
(the run folder rules of rdusim.outdir) results.json, report.md and figures/pareto.png (nodes
against p99 end-to-end latency, every configuration simulated, the Pareto front joined), and
the search's sweep table in ``search/`` (rdusim.fleet.search: ``--resume`` goes on from it)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import shlex
import sys

from rdusim import outdir
from rdusim.cache import cache_at
from rdusim.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated
from rdusim.fleet.plan import cheapest
from rdusim.fleet.plan import name_of as _label
from rdusim.fleet.search import SEARCH_DIR, PointFailed, search
from rdusim.fleet.spec import load_plan
from rdusim.paths import default_out
from rdusim.sweep.executor import ExecutorSpec, WorkerLost


def pareto_png(rows) -> bytes:
    """Nodes (left) and price per hour (right: fleets of priced machines) against p99 E2E
    latency, every configuration simulated; the Pareto front of the fleets meeting the SLO
    joined; a 95% interval bar where the p99 has one (synthetic traffic, replications > 1)."""
    from rdusim.report.figures import finish, new_figure, style_axes

    fig = new_figure(11.0, 4.5)
    axes = [fig.add_subplot(1, 2, k) for k in (1, 2)]
    for ax, x_key, x_label in zip(axes, ("nodes", "usd_per_hour"), ("nodes", "USD per hour (published node prices)")):
        for model, marker in zip(sorted({r["model"] for r in rows}), "os^D"):
            mine = [r for r in rows if r["model"] == model and r.get("e2e.p99_s") is not None
                    and r.get(x_key) is not None]
            for met, face in ((True, None), (False, "none")):
                pick = [r for r in mine if r["met"] == met]
                ax.scatter([r[x_key] for r in pick], [r["e2e.p99_s"] for r in pick], marker=marker,
                           facecolors=face, edgecolors=None if met else "grey",
                           label=f"{model} {'meets SLO' if met else 'misses'}")
            ci = [r for r in mine if r.get("e2e.p99_ci_lo_s") is not None and r.get("e2e.p99_ci_hi_s") is not None]
            if ci:
                ys = [r["e2e.p99_s"] for r in ci]
                ax.errorbar([r[x_key] for r in ci], ys, fmt="none", ecolor="grey", lw=0.8,
                            yerr=[[max(y - r["e2e.p99_ci_lo_s"], 0.0) for y, r in zip(ys, ci)],
                                  [max(r["e2e.p99_ci_hi_s"] - y, 0.0) for y, r in zip(ys, ci)]])
            front, best = [], math.inf
            for r in sorted(mine, key=lambda r: (r[x_key], r["e2e.p99_s"])):
                if r["met"] and r["e2e.p99_s"] < best:
                    best = r["e2e.p99_s"]
                    front.append((r[x_key], best))
            ax.plot([p[0] for p in front], [p[1] for p in front], lw=1)
        ax.set_yscale("log")
        style_axes(ax, x_label, "p99 end-to-end latency (s)")
        ax.legend(fontsize=7)
    return finish(fig, "pareto", "Fleets: nodes and price vs p99 latency (Pareto front of the fleets meeting the SLO "
                  "joined; bars: 95% intervals)").png


def _g(x) -> str:
    return "-" if x is None else f"{x:.3g}"


def _yes(b: bool) -> str:
    return "yes" if b else "no"


def _with_ci(r, k: str) -> str:
    """A p99 with its 95% interval where it has one (synthetic traffic, replications > 1)."""
    v, lo, hi = r.get(k), r.get(k.replace("_s", "_ci_lo_s")), r.get(k.replace("_s", "_ci_hi_s"))
    if v is None:
        return "-"
    return f"{v:.3g} [{lo:.3g}, {hi:.3g}]" if lo is not None and hi is not None else f"{v:.3g}"


def main_plan(args, jobs: int = 1) -> int:
    loaded = load_plan(args.file, args.seed)
    name = loaded.serve.spec.name
    out = Path(args.out) if args.out else default_out(name)
    kind = outdir.Kind.RUN
    workers = getattr(args, "workers", None)
    executor = ExecutorSpec.from_flags(getattr(args, "executor", None), jobs if workers is None else workers,
                                       getattr(args, "scheduler", None), getattr(args, "connect_timeout", None))
    cache_at(args.cache_dir)                # a bad --cache-dir fails before anything runs
    cache_dir = str(Path(args.cache_dir).resolve()) if args.cache_dir else None
    ignore = [out / SEARCH_DIR]             # the search's own table (an interrupted first run leaves it alone)
    outdir.check_target(out, kind, force=args.force, ignore=ignore)
    with outdir.locked(out, "plan"):
        outdir.check_target(out, kind, force=args.force, ignore=ignore)
        try:
            found = search(loaded, out, executor, resume=getattr(args, "resume", False), cache_dir=cache_dir)
        except (PointFailed, WorkerLost) as exc:
            print(f"rdusim: error: {exc}. Finished points are stored in {shlex.quote(str(out / SEARCH_DIR))}; "
                  f"re-run with --resume to finish.", file=sys.stderr)
            return 1
        except KeyboardInterrupt as exc:
            terminated = isinstance(exc, Terminated)
            print(f"{'terminated' if terminated else 'interrupted'}: finished points are stored in "
                  f"{shlex.quote(str(out / SEARCH_DIR))}; re-run with --resume to finish", file=sys.stderr)
            return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
        rows, best, same, seconds = found.rows, found.best, found.same, found.wall_s
        if found.code_changed and found.ran and found.stored:
            print("rdusim: warning: the rdusim sources changed since the stored points ran; rows from "
                  "before and after --resume may not be comparable", file=sys.stderr)
        metrics = {}
        for r in best:
            key = f"plan.{r['model']}.{r['layout']}.{r['prefill']}.{r['decode']}"
            metrics[f"{key}.nodes"] = r["nodes"]
            metrics[f"{key}.prefill_replicas"] = r["prefill_replicas"]
            metrics[f"{key}.decode_replicas"] = r["decode_replicas"]
            for k in ("ttft.p99_s", "tbt.p99_s", "e2e.p99_s", "ttft.p99_ci_lo_s", "tbt.p99_ci_lo_s", "e2e.p99_ci_lo_s",
                      "ttft.p99_ci_hi_s", "tbt.p99_ci_hi_s", "e2e.p99_ci_hi_s", "kv_transfer.s_mean",
                      "kv_transfer.bytes_mean"):
                if r.get(k) is not None:
                    metrics[f"{key}.{k}"] = r[k]
        for r in best:
            if r["usd_per_hour"] is not None:
                metrics[f"plan.{r['model']}.{r['layout']}.{r['prefill']}.{r['decode']}.usd_per_hour"] = r["usd_per_hour"]
        cheap = cheapest(rows)
        for r in cheap:
            metrics[f"plan.{r['model']}.cheapest.usd_per_hour"] = r["usd_per_hour"]
        metrics["plan.configurations"] = len(rows)
        metrics["plan.points_simulated"] = found.ran
        metrics["plan.points_stored"] = found.stored
        doc = {"name": name, "kind": "plan", "metrics": metrics, "same_nodes": same,
               "configurations": [{k: v for k, v in r.items() if k != "metrics"} | {"binding_ratio": r["ratio"]}
                                  for r in rows]}
        for c in doc["configurations"]:
            c.pop("ratio", None)
            c["binding_ratio"] = None if not math.isfinite(c["binding_ratio"]) else c["binding_ratio"]
        lines = [f"# Plan: {name}", "", f"{len(rows)} configurations in {seconds:.1f} s ({found.ran} simulated now, "
                 f"{found.stored} taken from the search table {SEARCH_DIR}/sweep.sqlite). "
                 "Smallest fleets by nodes; cheapest by the machines' published node prices (machines without one: "
                 "unpriced). p99s of synthetic traffic with replications > 1 are the mean over the replications "
                 "with its 95% Student-t interval [lo, hi]; a trace replay is one realisation (no interval).", ""]
        lines += [f"Cheapest fleet meeting the SLO for {r['model']}: {_label(r)}, {r['nodes']} nodes, "
                  f"{r['usd_per_hour']:.2f} USD/hour" for r in cheap] + ["",
                 "| model | fleet | nodes | p99 TTFT s | p99 TBT s | p99 E2E s | binding | forced by |",
                 "|---|---|---|---|---|---|---|---|"]
        for r in sorted(best, key=lambda r: (r["model"], r["nodes"])):
            lines.append(f"| {r['model']} | {_label(r)} | {r['nodes']} | {_with_ci(r, 'ttft.p99_s')} | "
                         f"{_with_ci(r, 'tbt.p99_s')} | {_with_ci(r, 'e2e.p99_s')} | "
                         f"{r['binding']} ({r['ratio']:.2f} of its limit) | {r['forced_by']} |")
        if same:
            lines += ["", "Disaggregated against co-located serving on the same number of nodes (p99, s):", "",
                      "| model | disaggregated | co-located | nodes | " + " | ".join(
                          f"{k} disagg / coloc" for k in loaded.plan.slo.limits()) + " | meets SLO disagg / coloc |",
                      "|---|---|---|---|" + "---|" * len(loaded.plan.slo.limits()) + "---|"]
            for c in same:
                vals = " | ".join(f"{_g(c[f'disaggregated.{k}'])} / {_g(c[f'colocated.{k}'])}"
                                  for k in loaded.plan.slo.limits())
                lines.append(f"| {c['model']} | {c['disaggregated']} | {c['colocated']} | {c['nodes']} | {vals} | "
                             f"{_yes(c['disaggregated.met'])} / {_yes(c['colocated.met'])} |")
        lines += ["", "![Pareto: nodes against p99 end-to-end latency](figures/pareto.png)", ""]
        with outdir.staged(out, kind, force=args.force) as stage:
            (stage / "results.json").write_text(json.dumps(doc, indent=1))
            (stage / "report.md").write_text("\n".join(lines))
            (stage / "figures").mkdir()
            (stage / "figures" / "pareto.png").write_bytes(pareto_png(rows))
    print(f"plan: {loaded.file}: {len(rows)} configurations in {seconds:.1f} s ({found.ran} simulated, "
          f"{found.stored} from the search table); smallest fleet meeting the SLO (nodes):")
    for r in sorted(best, key=lambda r: (r["model"], r["nodes"])):
        print(f"  {r['model']:<11} {_label(r):<58} {r['nodes']:>2} nodes  binding {r['binding']}")
    for r in cheapest(rows):
        print(f"  cheapest for {r['model']}: {_label(r)}, {r['nodes']} nodes, {r['usd_per_hour']:.2f} USD/hour "
              "(machines with a published price)")
    print(f"\nresults: {out / 'results.json'}\nreport:  {out / 'report.md'}\nsearch:  {out / SEARCH_DIR}")
    return 0
