"""Command line: one small function per command. Bad input exits 2 with one paragraph."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rdusim import __version__
from rdusim.errors import InputError


def _fmt_si(x: float, unit: str = "") -> str:
    for div, pre in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3f} {pre}{unit}"
    return f"{x:.4g} {unit}".rstrip()


def cmd_arch_show(args) -> int:
    from rdusim.config.arch import load_arch
    from rdusim.config.yamlio import parse_set
    from rdusim.results import plain

    arch = load_arch(args.file, [parse_set(s) for s in args.set])
    data = plain(arch)
    sources = data.pop("sources")
    if args.json:
        print(json.dumps({"spec": data, "derived": arch.derived(), "sources": sources}, indent=1))
        return 0
    print(f"{arch.name} ({arch.kind.value}): {arch.description}")

    def walk(node, prefix=""):
        for k, v in node.items():
            key = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict):
                walk(v, key)
            elif key not in ("name", "kind", "description"):
                print(f"  {key:<48} {v!s:>18}   [{sources.get(key, 'default value of the spec, no source needed')}]")
    walk(data)
    print("derived totals:")
    for k, v in arch.derived().items():
        print(f"  {k:<48} {v:>18.6g}   ({_fmt_si(v)})")
    return 0


def cmd_stack_show(args) -> int:
    from rdusim.config.stack import load_stack, stack_path
    from rdusim.config.yamlio import parse_set
    from rdusim.results import plain

    stack = load_stack(args.name, [parse_set(s) for s in args.set], file="command line", key="stack show NAME")
    data = plain(stack)
    sources = data.pop("sources")
    if args.json:
        print(json.dumps({"spec": data, "sources": sources, "file": str(stack_path(args.name))}, indent=1))
        return 0
    print(f"{stack.name} (drives {stack.kind.value} machines; file {stack_path(args.name)}): {stack.description}")
    print(f"  {'launch':<32} {stack.launch.value:>12}   [default kernel-launch mode; a platform may override it]")
    for k, v in data["host"].items():
        print(f"  {'host.' + k:<32} {v:>12.4g}   [{sources.get('host.' + k, 'default value, no source needed')}]")
    return 0


def cmd_graph(args) -> int:
    from rdusim.graph.summary import summarize_request

    summary = summarize_request(args.model, args.phase, args.batch, args.seq, args.tp)
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{'op':<28} {'kind':<12} {'GFLOP':>12} {'MB read':>10} {'MB written':>10} {'FLOP/B':>8}")
    for r in summary["ops"]:
        oi = r["oi_flops_per_byte"]
        print(f"{r['name']:<28} {r['kind']:<12} {r['flops'] / 1e9:>12.4f} {r['bytes_read'] / 1e6:>10.3f} "
              f"{r['bytes_written'] / 1e6:>10.3f} {oi if oi is not None else float('inf'):>8.2f}")
    request = f" {args.phase} batch={args.batch} seq={args.seq} tp={args.tp}" if summary["phase"] else ""
    print(f"\n{summary['model']}{request}: {summary['num_ops']} ops")
    print(f"  parameters              {summary['params'] / 1e9:.4f} B ({_fmt_si(summary['param_bytes'], 'B')})")
    print(f"  FLOPs                   {_fmt_si(summary['flops'], 'FLOP')}")
    if summary["flops_per_param_per_token"] is not None:
        print(f"  FLOPs/param/token       {summary['flops_per_param_per_token']:.3f}")
    print(f"  bytes moved             {_fmt_si(summary['bytes'], 'B')}")
    print(f"  operational intensity   {summary['oi_flops_per_byte']:.2f} FLOP/B unfused, "
          f"{summary['fused_oi_flops_per_byte'] or float('inf'):.2f} fused")
    if summary["kv_cache_bytes_per_token"] is not None:
        print(f"  KV cache per token      {_fmt_si(summary['kv_cache_bytes_per_token'], 'B')} "
              "(whole model, one sequence)")
    return 0


def cmd_run(args) -> int:
    from rdusim.config.workload import REPO_ROOT, load_workload
    from rdusim.config.yamlio import parse_set
    from rdusim.studies import run_study, summarize

    loaded = load_workload(args.workload, [parse_set(s) for s in args.set], args.seed)
    result = run_study(loaded, trace=args.trace)
    print(summarize(result))
    out = Path(args.out) if args.out else REPO_ROOT / "reports" / loaded.name
    path = result.write(out)
    print(f"\nresults: {path}")
    if args.trace:
        from rdusim.report.trace import write_trace
        print(f"trace:   {write_trace(result.trace, out)}")
    if args.report:
        from rdusim.report.render import render_report
        print(f"report:  {render_report(result, out)}")
    return 0


def cmd_report(args) -> int:
    if Path(args.results).is_dir():   # a sweep directory (sweep.sqlite): plots from the stored table
        from rdusim.sweep.plots import render_sweep
        print("\n".join(f"plot: {p}" for p in render_sweep(args.results, args.out)) or "no metrics to plot")
        return 0
    from rdusim.report.render import render_report
    from rdusim.results import load_result

    result = load_result(args.results)
    out = Path(args.out) if args.out else Path(args.results).parent
    print(f"report: {render_report(result, out)}")
    return 0


def cmd_sweep(args) -> int:
    from rdusim.sweep.command import main_sweep

    return main_sweep(args)


def cmd_validate(args) -> int:
    from rdusim.validate import main_validate

    return main_validate(args.refs)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rdusim", description=__doc__)
    p.add_argument("--version", action="version", version=f"rdusim {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a workload and write results.json")
    r.add_argument("workload")
    r.add_argument("--out")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    r.add_argument("--seed", type=int)
    r.add_argument("--report", action="store_true")
    r.add_argument("--trace", action="store_true")
    r.set_defaults(func=cmd_run)

    v = sub.add_parser("validate", help="compare the simulator with published numbers")
    v.add_argument("--refs", nargs="+", action="extend", default=[])
    v.set_defaults(func=cmd_validate)

    sw = sub.add_parser("sweep", help="run a workload over a grid of overrides (or a sweep file)")
    sw.add_argument("workload", help="a workload YAML, or a sweep file with a top-level 'sweep:' key")
    sw.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...")
    sw.add_argument("--zip", action="store_true", help="zip the grids (equal lengths) instead of their product")
    sw.add_argument("--metrics", nargs="+", action="extend", default=[], metavar="GLOB")
    sw.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="fixed for every point")
    sw.add_argument("--out")
    sw.add_argument("--executor", choices=["local", "dask"])
    sw.add_argument("--workers", type=int)
    sw.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler, e.g. tcp://host:8786")
    sw.add_argument("--resume", action="store_true", help="run only the points missing from --out")
    sw.add_argument("--seed", type=int)
    sw.set_defaults(func=cmd_sweep)

    rep = sub.add_parser("report", help="render a report from results.json")
    rep.add_argument("results")
    rep.add_argument("--out")
    rep.set_defaults(func=cmd_report)

    g = sub.add_parser("graph", help="operator graph of a model (or a graph YAML): FLOPs, bytes, parameters")
    g.add_argument("model", help="a name in models/, a model YAML, or a graph YAML with ops")
    g.add_argument("--phase", choices=["prefill", "decode", "train"], help="required for models")
    g.add_argument("--batch", type=int, default=1)
    g.add_argument("--seq", type=int, default=2048)
    g.add_argument("--tp", type=int, default=1)
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=cmd_graph)

    a = sub.add_parser("arch", help="machine descriptions")
    asub = a.add_subparsers(dest="arch_command", required=True)
    show = asub.add_parser("show", help="print a spec with sources and derived totals")
    show.add_argument("file")
    show.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_arch_show)

    st = sub.add_parser("stack", help="serving stacks (the software driving a machine): host costs, launch mode")
    ssub = st.add_subparsers(dest="stack_command", required=True)
    sshow = ssub.add_parser("show", help="print a stack's costs with their sources")
    sshow.add_argument("name", help="a stack in stacks/ (nemo, tensorrt_llm, vllm, sambanova) or a YAML path")
    sshow.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a stack field")
    sshow.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sshow.set_defaults(func=cmd_stack_show)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        print(f"rdusim: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
