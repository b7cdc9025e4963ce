"""Issue 11, items 1 and 4 (slow): the README's Set up and Tour commands run twice in a row
from a clean copy of the project, and a wheel installed in a fresh venv outside the
repository runs a shipped workload by name."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from rdusim.config.workload import REPO_ROOT

pytestmark = pytest.mark.slow


def readme_commands(readme: str) -> list[str]:
    """The shell lines of the ```sh blocks in the Set up and Tour sections, in order."""
    cmds = []
    for section in ("Set up", "Tour"):
        body = readme.split(f"\n## {section}\n", 1)[1]
        body = re.split(r"\n## ", body, maxsplit=1)[0]
        for block in re.findall(r"```sh\n(.*?)```", body, flags=re.S):
            cmds += [ln for ln in block.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return cmds


def clean_copy(dest: Path) -> Path:
    """What a clone of the current tree holds: tracked and new files, nothing ignored."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO_ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO_ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def venv(path: Path, *, share_deps: bool) -> Path:
    """A fresh venv; with ``share_deps`` it sees this environment's installed packages (not
    its rdusim) through a .pth line, so installing the project needs no dependency downloads."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    if share_deps:
        site = next(path.glob("lib/python*/site-packages"))
        (site / "zz_shared_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return path / "bin"


def test_readme_commands(tmp_path):
    cmds = readme_commands((REPO_ROOT / "README.md").read_text())
    assert any(c.startswith("pip install -e .") for c in cmds) and any("rdusim sweep" in c for c in cmds)
    clone = clean_copy(tmp_path / "clone")
    bindir = venv(tmp_path / "venv", share_deps=True)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(bindir.parent),
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    for attempt in (1, 2):
        for cmd in cmds:
            # the test command of Set up runs this very suite: collect it only
            line = cmd.replace("pytest -q", "pytest -q --collect-only -p no:cacheprovider")
            proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", line], cwd=clone, env=env,
                                  capture_output=True, text=True, timeout=900)
            assert proc.returncode == 0, f"run {attempt}: {cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
            assert "Traceback" not in proc.stderr, f"run {attempt}: {cmd}\n{proc.stderr[-3000:]}"
    where = subprocess.run([str(bindir / "python"), "-c", "import rdusim; print(rdusim.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path).stdout
    assert where.startswith(str(clone))                   # the clone's rdusim ran, not this checkout's
    assert (clone / "reports" / "coe150" / "index.html").is_file()
    assert (clone / "reports" / "whatif_coe_ddr" / "sweep.sqlite").is_file()


def test_wheel_in_a_fresh_venv_runs_a_shipped_workload_by_name(tmp_path):
    src = clean_copy(tmp_path / "src")
    bindir = venv(tmp_path / "venv", share_deps=False)
    proc = subprocess.run([str(bindir / "pip"), "install", "-q", str(src)], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shutil.rmtree(src)                                    # nothing may come from the source tree
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = subprocess.run([str(bindir / "python"), "-c",
                            "import rdusim, rdusim.paths as p; print(rdusim.__file__); print(p.DATA_ROOT)"],
                           capture_output=True, text=True, cwd=outside, check=True).stdout.split()
    assert where[0].startswith(str(tmp_path / "venv")) and where[1].endswith("rdusim/_data")
    for shipped in ("arch/sn40l.yaml", "models/llama2-7b.yaml", "workloads/coe150.yaml", "references/coe.yaml",
                    "stacks/nemo.yaml"):
        assert (Path(where[1]) / shipped).is_file(), shipped
    run = subprocess.run([str(bindir / "rdusim"), "run", "llama2_7b_chat"], capture_output=True, text=True,
                         cwd=outside, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"arch sn40l: {where[1]}/arch/sn40l.yaml" in run.stdout
    assert (outside / "reports" / "llama2_7b_chat" / "results.json").is_file()
    main_job = subprocess.run([str(bindir / "rdusim"), "run", "coe150", "--out", "c"], capture_output=True,
                              text=True, cwd=outside, timeout=300)     # its footprint reads shipped cluster files
    assert main_job.returncode == 0 and (outside / "c" / "results.json").is_file(), main_job.stderr[-3000:]
    fusion = subprocess.run([str(bindir / "rdusim"), "run", "workloads/monarch_fft.yaml", "--out", "m"],
                            capture_output=True, text=True, cwd=outside, timeout=300)
    assert fusion.returncode == 0 and (outside / "m" / "results.json").is_file(), fusion.stderr[-3000:]
