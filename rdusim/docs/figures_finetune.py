"""The documented fine-tuning figures (README "Fine-tuning"), from
``rdusim run workloads/finetune_mixtral_qlora.yaml``."""

from __future__ import annotations

from typing import Any, Mapping

from rdusim.docs.figure_base import fence, figure
from rdusim.docs.runs import Runs, section

FINETUNE = "rdusim run workloads/finetune_mixtral_qlora.yaml"


def _job(m: Mapping[str, Any], platform: str, dataset: str = "short", moe: str = "sparse") -> Mapping[str, Any]:
    head = f"finetune.{platform}.{dataset}.{moe}."
    return {k[len(head):]: v for k, v in m.items() if k.startswith(head)}


@figure("finetune.table")
def finetune_table(runs: Runs) -> str:
    return fence(section(runs.output(FINETUNE), "platform"))


@figure("finetune.nf4_weights")
def finetune_nf4_weights(runs: Runs) -> str:
    return f"{_job(runs.metrics(FINETUNE), 'a40')['memory.weights_bytes'] / 1e9:.0f} GB"


@figure("finetune.small_gpus")
def finetune_small_gpus(runs: Runs) -> str:
    m = runs.metrics(FINETUNE)
    return (f"a 48 GB A40 room for a batch of {int(_job(m, 'a40')['max_batch'])} short queries, "
            f"a 40 GB A100 for {int(_job(m, 'a100_40gb')['max_batch'])}")


@figure("finetune.padding")
def finetune_padding(runs: Runs) -> str:
    """The A100 80GB against the A100 40GB: same chip, larger batch, per-query rate."""
    m = runs.metrics(FINETUNE)
    big, small = _job(m, "a100_80gb"), _job(m, "a100_40gb")
    verb = "fewer" if big["queries_per_s"] < small["queries_per_s"] else "more"
    return (f"the A100 80GB at batch {int(big['max_batch'])} trains {big['queries_per_s']:.2f} queries a second, "
            f"{verb} than the A100 40GB's {small['queries_per_s']:.2f} at batch {int(small['max_batch'])}")


@figure("finetune.dense_ratio")
def finetune_dense_ratio(runs: Runs) -> str:
    m = runs.metrics(FINETUNE)
    ratios = []
    for key, v in m.items():
        if key.endswith(".sparse.queries_per_s"):
            dense = m.get(key.replace(".sparse.", ".dense."))
            if dense:
                ratios.append(v / dense)
    return f"{min(ratios):.1f}-{max(ratios):.1f}x"
