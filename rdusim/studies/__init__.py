"""Studies: one module per workload kind, each with
``run(loaded, *, trace=False) -> RunResult`` and
``summary(result) -> str`` (the table the CLI prints)."""

from __future__ import annotations

import importlib
from types import ModuleType

from rdusim.config.workload import LoadedWorkload, WorkloadKind
from rdusim.results import RunResult

_MODULES = {
    WorkloadKind.MODEL: "rdusim.studies.model_run",
    WorkloadKind.FUSION: "rdusim.studies.fusion",
    WorkloadKind.COE: "rdusim.studies.coe",
    WorkloadKind.SERVE: "rdusim.studies.serve",
}


def study_module(kind: WorkloadKind | str) -> ModuleType:
    return importlib.import_module(_MODULES[WorkloadKind(kind)])


def run_study(loaded: LoadedWorkload, *, trace: bool = False) -> RunResult:
    return study_module(loaded.kind).run(loaded, trace=trace)


def summarize(result: RunResult) -> str:
    return study_module(result.kind).summary(result)
