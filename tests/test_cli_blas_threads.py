"""The command line runs numpy single-threaded in BLAS unless the user says otherwise."""

import os
import subprocess
import sys

PROBE = "import rdusim.cli, os; print(os.environ['OPENBLAS_NUM_THREADS'])"


def _probe(env_value):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if env_value is not None:
        env["OPENBLAS_NUM_THREADS"] = env_value
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env,
                          check=True).stdout.strip()


def test_cli_sets_one_blas_thread_and_keeps_a_users_setting():
    assert _probe(None) == "1"
    assert _probe("4") == "4"


def test_the_library_alone_leaves_blas_alone():
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", "import rdusim.studies, os; print(os.environ.get('OPENBLAS_NUM_THREADS'))"],
                         capture_output=True, text=True, env=env, check=True).stdout.strip()
    assert out == "None"
