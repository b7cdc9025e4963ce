"""Cluster platforms of a model run (``clusters:`` in a ``model`` workload): the model
pipelined over the nodes of a cluster (``stages``), each stage tensor parallel over ``tp``
sockets/GPUs -- inside one node, or across ``tp / devices_per_node`` whole nodes when ``tp``
is larger (``stages: 1``: tensor parallelism alone).

Metrics per cluster platform C: ``model.C.pp.ttft_s``, ``.tpot_s``, ``.latency_s``,
``.tokens_per_s``, ``.stage_prefill_s``, ``.stage_decode_s``, ``.transfer_prefill_s``,
``.transfer_decode_s``, ``.prefill_bubble``, ``.decode_bubble``, ``.memory.*`` (rdusim.memory),
``.oom`` (1: a stage does not fit; the reason in the notes, no timing metrics); ``.tp``,
``.nodes_per_stage``, ``.allreduce_intra_s`` / ``.allreduce_inter_s`` (one decode all-reduce
of a micro-batch's hidden state: the node's part and the part across nodes, 0 inside one node)
and ``.decode_network_s`` (the inter-node phases of one decode step's all-reduces, from the
engine's kernel records).
"""

from __future__ import annotations

from rdusim.config.cluster import ClusterSpec, load_cluster
from rdusim.config.deployment import Deployment
from rdusim.config.formats import check_compute, for_machine
from rdusim.config.model import ModelConfig
from rdusim.config.stack import DEFAULT_STACK, load_stack
from rdusim.config.workload import LoadedWorkload, resolve_path
from rdusim.config.workload_cluster import ClusterPlatformSpec
from rdusim.engine.pipeline_parallel import PipelineTiming, check_split, simulate_pipelined
from rdusim.cache import RunCache
from rdusim.errors import InputError
from rdusim.rows import platform_name_problem
from rdusim.rows.model import ModelScope


def load(loaded: LoadedWorkload, cfg: ModelConfig) -> dict[str, tuple[ClusterSpec, Deployment, ClusterPlatformSpec]]:
    """Every cluster platform's cluster and deployment (one stage's machine), checked."""
    out = {}
    w = loaded.spec
    if w.speculative is not None and w.clusters:
        # the pipelined / cross-node path has no draft model: refuse rather than ignore it
        raise InputError(loaded.file, "speculative", "no speculative: section in a run with clusters (cluster "
                         f"platforms {sorted(w.clusters)} do not run speculative decoding; run it on platforms)",
                         "a speculative: section")
    for name, plat in w.clusters.items():
        key = f"clusters.{name}"
        if name in w.platforms:
            raise InputError(loaded.file, key, "a name not used by platforms", name)
        if (problem := platform_name_problem(name, "model")) is not None:
            raise InputError(loaded.file, key, problem, name)
        path = resolve_path(plat.cluster, loaded.file)
        if not path.is_file():
            raise InputError(loaded.file, f"{key}.cluster", "a path to a cluster YAML file", plat.cluster)
        cluster = load_cluster(path)
        stack = load_stack(plat.stack or DEFAULT_STACK[cluster.node.kind], (), file=loaded.file, key=f"{key}.stack")
        if stack.kind != cluster.node.kind:
            raise InputError(loaded.file, f"{key}.stack", f"a stack for a {cluster.node.kind.value} machine",
                             stack.name)
        launch = plat.launch or stack.launch
        if launch not in cluster.node.LAUNCH_MODES:
            raise InputError(loaded.file, f"{key}.launch", "a launch mode of the node's kind", launch.value)
        check_compute(cluster.node, for_machine(cfg, cluster.node).fmt.compute, loaded.file, "formats.compute")
        # tp beyond one node's devices: the node's machine with collectives that span nodes
        arch = cluster.spanning_arch() if plat.tp > cluster.devices_per_node else cluster.node
        dep = Deployment(arch, stack, for_machine(cfg, cluster.node), plat.tp, plat.fusion, launch,
                         loaded.execution)
        why = check_split(cluster, dep, plat.stages, plat.microbatches, w.batch_size)
        if why:
            field = next((f for f in ("microbatches", "stages", "tp") if why.startswith(f)), "stages")
            raise InputError(loaded.file, f"{key}.{field}", why, getattr(plat, field))
        kvh = cfg.num_key_value_heads
        if cfg.num_attention_heads % plat.tp or cfg.intermediate_size % plat.tp or \
                (kvh % plat.tp if kvh >= plat.tp else plat.tp % kvh):
            raise InputError(loaded.file, f"{key}.tp", f"a divisor of {cfg.name}'s heads and intermediate size", plat.tp)
        out[name] = (cluster, dep, plat)
    return out


def simulate(loaded: LoadedWorkload, entry, cache: RunCache) -> PipelineTiming:
    cluster, dep, plat = entry
    w = loaded.spec
    return simulate_pipelined(cluster, dep, plat.stages, plat.microbatches, w.prompt_tokens, w.output_tokens,
                              w.batch_size, cache)


def metrics(batch: int, output_tokens: int, t: PipelineTiming, tp: int) -> dict[str, float]:
    """The pipelined run's values by metric name (the model rows of scope ``pp``)."""
    out = {"oom": 0 if t.oom is None else 1, "stages": t.stages, "microbatches": t.microbatches,
           "tp": tp, "nodes_per_stage": t.nodes_per_stage}
    out.update(t.memory.values())
    if t.oom is not None:
        return out
    out.update({"ttft_s": t.ttft_s, "tpot_s": t.tpot_s, "latency_s": t.latency_s,
                "tokens_per_s": batch * output_tokens / t.latency_s,
                "stage_prefill_s": t.stage_prefill_s, "stage_decode_s": t.stage_decode_s,
                "transfer_prefill_s": t.transfer_prefill_s, "transfer_decode_s": t.transfer_decode_s,
                "prefill_bubble": t.prefill.bubble,
                "decode_bubble": t.decode.bubble if t.decode is not None else 0.0,
                "allreduce_intra_s": t.allreduce_intra_s, "allreduce_inter_s": t.allreduce_inter_s,
                "decode_network_s": t.decode_network_s})
    return out


def summary_lines(t: dict, names, notes: dict) -> list[str]:
    """``t``: the model rows by identity (``(platform, scope) -> {metric: value}``)."""
    rows = [n for n in names if "oom" in t.get((n, ModelScope.PP), {})]
    if not rows:
        return []
    lines = ["", "Over nodes: stages x micro-batches x tp (nodes/stage) | ttft ms | tpot ms | tok/s | "
             "bubble prefill / decode | decode all-reduce us: node + network"]
    for n in rows:
        p = t[(n, ModelScope.PP)]
        if p["oom"]:
            lines.append(f"  {n:<14} OOM: {notes.get(n, '')}")
            continue
        lines.append(f"  {n:<14} {int(p['stages'])} x {int(p['microbatches'])} x tp{int(p['tp'])} "
                     f"({int(p['nodes_per_stage'])}) | {p['ttft_s'] * 1e3:8.2f} | "
                     f"{p['tpot_s'] * 1e3:7.3f} | {p['tokens_per_s']:8.1f} | "
                     f"{p['prefill_bubble']:.3f} / {p['decode_bubble']:.3f} | "
                     f"{p['allreduce_intra_s'] * 1e6:.1f} + {p['allreduce_inter_s'] * 1e6:.1f}")
    return lines
