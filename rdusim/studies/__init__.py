"""Studies: one module per workload kind, each with
``run(loaded, *, trace=False) -> RunResult`` and
``summary(result) -> str`` (the table the CLI prints)."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Callable

from rdusim.cache import RunCache, active_cache, using
from rdusim.config.workload import LoadedWorkload, WorkloadKind
from rdusim.results import RunResult

_MODULES = {
    WorkloadKind.MODEL: "rdusim.studies.model_run",
    WorkloadKind.FUSION: "rdusim.studies.fusion",
    WorkloadKind.COE: "rdusim.studies.coe",
    WorkloadKind.SERVE: "rdusim.studies.serve",
    WorkloadKind.FINETUNE: "rdusim.studies.finetune",
}


def study_module(kind: WorkloadKind | str) -> ModuleType:
    return importlib.import_module(_MODULES[WorkloadKind(kind)])


def run_study(loaded: LoadedWorkload, *, trace: bool = False, cache: RunCache | None = None,
              wants: Callable[[str], bool] | None = None) -> RunResult:
    """Run the workload's study. ``cache``: the run's cache of graphs, plans and simulated
    kernels (by default the enclosing ``rdusim.cache.using`` block's, else a new one; a
    sweep worker passes one it keeps across points, validate shares one across its runs).
    The engines get it explicitly where the call path passes it, else from this scope.
    ``wants(key)``: whether the caller keeps metric ``key`` (a sweep's ``--metrics``); a
    study may skip a part none of whose metrics it keeps (None: keep everything). A caller
    that passes ``wants`` keeps metrics only (a sweep point, a validate run): a study may
    leave its records out too."""
    with using(active_cache(cache)):
        return study_module(loaded.kind).run(loaded, trace=trace, wants=wants)


def summarize(result: RunResult) -> str:
    return study_module(result.kind).summary(result)
