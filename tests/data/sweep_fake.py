"""A tiny, deterministic stand-in for a study, for the sweep tests (test code, not rdusim).

``fake_run_study`` reads a few fields of a model workload (tests/data/sweep_model.yaml) and
its sn40l arch, and returns metrics that depend on them and on the seed. It rejects
``output_tokens: 13`` at run time (an InputError, as a study would) and reports a simulated
OOM when ``batch_size > 64``. ``SWEEP_FAKE_DELAY_S`` makes each point sleep (kill tests).

Run as a script, it patches the study in and calls the rdusim command line:
``python tests/data/sweep_fake.py sweep tests/data/sweep_model.yaml --grid ...``.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np


def fake_run_study(loaded, *, trace: bool = False, cache=None, wants=None):
    from rdusim.errors import InputError
    from rdusim.results import RunResult

    spec, arch = loaded.spec, loaded.archs["sn40l"]
    delay = float(os.environ.get("SWEEP_FAKE_DELAY_S", "0"))
    if delay:
        time.sleep(delay)
    if spec.output_tokens == 13:
        raise InputError(loaded.file, "output_tokens", "a value other than 13 (fake study)", 13)
    cap, pcus = arch.socket.pmu.capacity_bytes, arch.socket.pcu.count
    jitter = float(np.random.default_rng(loaded.seed).random()) * 1e-6
    tpot = 1e-3 * (524288 / cap) * (1040 / pcus) + 1e-5 * spec.batch_size + jitter
    metrics = {
        "model.sn40l.tpot_s": tpot,
        "model.sn40l.ttft_s": 1e-4 * spec.prompt_tokens,
        "model.sn40l.latency_s": 1e-4 * spec.prompt_tokens + tpot * spec.output_tokens,
        "model.sn40l.oom": int(spec.batch_size > 64),
    }
    return RunResult(workload_name=spec.name, kind="model", resolved={}, archs={}, seed=loaded.seed,
                     metrics=metrics)


def install(monkeypatch=None) -> None:
    """Replace rdusim.studies.run_study (the sweep runner looks it up at call time)."""
    import rdusim.studies

    if monkeypatch is not None:
        monkeypatch.setattr(rdusim.studies, "run_study", fake_run_study)
    else:
        rdusim.studies.run_study = fake_run_study


def dask_setup(worker=None) -> None:
    """Dask worker preload hook (``distributed.worker.preload``): patch the study in the worker."""
    install()


# --- helpers shared by the sweep tests ---------------------------------------------------

def table(directory) -> list[tuple]:
    """The stored table without wall times: (index, params, seed, status, metrics, error)."""
    from rdusim.sweep.store import SweepStore

    with SweepStore.open(directory, lock=False) as store:
        return [(r.index, dict(r.params), r.seed, r.status.value, dict(r.metrics), r.error)
                for r in store.rows()]


if __name__ == "__main__":
    install()
    from rdusim.cli import main

    sys.exit(main(sys.argv[1:]))
