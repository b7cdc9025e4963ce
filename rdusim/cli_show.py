"""The show commands of the command line: ``rdusim arch show``, ``rdusim stack show`` and
``rdusim graph`` (what a machine, a stack and a model's graph hold, without simulating)."""

from __future__ import annotations

import json


def _fmt_si(x: float, unit: str = "") -> str:
    for div, pre in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3f} {pre}{unit}"
    return f"{x:.4g} {unit}".rstrip()


def cmd_arch_show(args) -> int:
    from rdusim.config.arch import load_arch
    from rdusim.config.yamlio import parse_set
    from rdusim.results import plain

    from rdusim.config.workload import REPO_ROOT
    from rdusim.paths import find_user_file

    arch = load_arch(find_user_file(args.file, "arch", data_root=REPO_ROOT), [parse_set(s) for s in args.set])
    data = plain(arch)
    sources = data.pop("sources")
    from rdusim.energy import with_costs       # + node price and the calibrated power model
    derived = with_costs(arch)
    if args.json:
        print(json.dumps({"spec": data, "derived": derived, "sources": sources}, indent=1))
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
    for k, v in derived.items():
        print(f"  {k:<48} {v:>18.6g}   ({_fmt_si(v)})")
    return 0


def cmd_stack_show(args) -> int:
    from rdusim.config.stack import load_stack, stack_path
    from rdusim.config.yamlio import parse_set
    from rdusim.results import plain

    stack = load_stack(args.name, [parse_set(s) for s in args.set], file="command line", key="stack show NAME")
    data = plain(stack)
    sources = data.pop("sources")
    from rdusim.config.stack_terms import show_lines, stack_terms

    if args.json:
        terms = [{"name": t.name, "per": t.per, "kind": t.kind.value, "what": t.what, "keys": list(t.keys)}
                 for t in stack_terms(stack)]
        print(json.dumps({"spec": data, "sources": sources, "terms": terms, "file": str(stack_path(args.name))},
                         indent=1))
        return 0

    print(f"{stack.name} (drives {stack.kind.value} machines; file {stack_path(args.name)}): {stack.description}")
    print("\n".join(show_lines(stack)))
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
