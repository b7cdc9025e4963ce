"""The documented prefix-caching figures (README "Serving under load"), from
``rdusim run workloads/serve_prefix.yaml`` with prefix caching on and off."""

from __future__ import annotations

from rdusim.docs.figure_base import fence, figure
from rdusim.docs.runs import Runs

ON = "rdusim run workloads/serve_prefix.yaml"
OFF = "rdusim run workloads/serve_prefix.yaml --set scheduler.prefix_caching=false"
PLATFORMS = ("sn40l", "dgx_h100")


@figure("serve_prefix.table")
def serve_prefix_table(runs: Runs) -> str:
    """Per platform, with and without prefix caching: hit rate, prompt tokens not prefilled,
    TTFT mean and p99 (the p99's 95% interval over the replications)."""
    on, off = runs.metrics(ON), runs.metrics(OFF)
    lines = [f"{'platform':<9} {'prefix cache':<12} {'hit rate':>8} {'saved prefill tok':>17} "
             f"{'TTFT mean ms':>12} {'TTFT p99 ms [95% CI]':>22}"]
    for p in PLATFORMS:
        for label, m in (("on", on), ("off", off)):
            k = f"serve.{p}.continuous."
            hit = f"{m[k + 'prefix_cache.hit_rate']:.3f}" if k + "prefix_cache.hit_rate" in m else "-"
            saved = f"{m[k + 'prefix_cache.saved_prefill_tokens']:,.0f}" if k + "prefix_cache.hit_rate" in m else "-"
            ci = f"[{1e3 * m[k + 'ttft.p99_ci_lo_s']:.1f},{1e3 * m[k + 'ttft.p99_ci_hi_s']:.1f}]"
            lines.append(f"{p:<9} {label:<12} {hit:>8} {saved:>17} {1e3 * m[k + 'ttft.mean_s']:>12.1f} "
                         f"{1e3 * m[k + 'ttft.p99_s']:>9.1f} {ci:>12}")
    return fence("\n".join(lines))
