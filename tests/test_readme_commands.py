"""Issue 11, items 1 and 4 (slow): the README's Set up and Tour commands run twice in a row
from a clean copy of the project, and a wheel installed in a fresh venv outside the
repository runs a shipped workload by name. Issue 21: every rdusim command the README and
docs/ show -- in code blocks, or complete in the text -- is run (slow), and a fast check
parses each one and loads the files it names (workload with its --set, sweep, arch, stack,
references), so a command the docs show cannot silently turn into exit 2."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from rdusim.config.workload import REPO_ROOT

DOCS = ("README.md", "docs/results.md")
_PLACEHOLDER = re.compile(r"<|\b[A-Z][A-Z_.]{2,}\b|=[A-Z]\b")      # NAME, FILE, DIR, reports/<name>, key=K


def readme_commands(readme: str) -> list[str]:
    """The shell lines of the ```sh blocks in the Set up and Tour sections, in order."""
    cmds = []
    for section in ("Set up", "Tour"):
        body = readme.split(f"\n## {section}\n", 1)[1]
        body = re.split(r"\n## ", body, maxsplit=1)[0]
        for block in re.findall(r"```sh\n(.*?)```", body, flags=re.S):
            cmds += [ln for ln in block.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return cmds


def shown_commands() -> list[str]:
    """Every rdusim command the README and docs show: the rdusim lines of their ```sh blocks,
    and complete commands in the text (`rdusim run workloads/x.yaml --set ...`, not a mere
    mention such as `rdusim run` or a template with NAME or <name> in it)."""
    cmds: list[str] = []
    for doc in DOCS:
        text = (REPO_ROOT / doc).read_text()
        for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
            for ln in block.splitlines():
                ln = ln.split("  #")[0].strip()
                cmds += [part.strip() for part in re.split(r"&&|\|\|", ln) if part.strip().startswith("rdusim ")]
        for snippet in re.findall(r"`(rdusim [^`]+)`", text.replace("\n  ", " ").replace("\n", " ")):
            if len(shlex.split(snippet)) >= 3 and not _PLACEHOLDER.search(snippet):
                cmds.append(snippet)
    return list(dict.fromkeys(cmds))


def check_command(cmd: str) -> None:
    """Parse ``cmd`` as rdusim does and load what it names, without simulating."""
    from rdusim.cli import build_parser
    from rdusim.config.yamlio import parse_set

    args = build_parser().parse_args(shlex.split(cmd)[1:])
    if args.command == "run":
        from rdusim.config.workload import load_workload
        loaded = load_workload(args.workload, [parse_set(s) for s in args.set], args.seed)
        if loaded.kind.value == "coe":          # the cluster files it names, checked as its study starts
            from rdusim.studies import coe_nodes
            coe_nodes.load(loaded)
            coe_nodes.load_footprint(loaded, list(loaded.spec.platforms))
    elif args.command == "sweep":
        from rdusim.sweep.command import spec_from_args
        from rdusim.sweep.grid import expand, validate_points
        spec = spec_from_args(args)
        validate_points(spec, expand(spec))
    elif args.command == "validate":
        from rdusim.paths import find_user_file
        from rdusim.validate import default_reference_files, load_references
        load_references([str(find_user_file(f, "references", data_root=REPO_ROOT)) for f in args.refs]
                        or default_reference_files())
    elif args.command == "arch":
        from rdusim.config.arch import load_arch
        from rdusim.paths import find_user_file
        load_arch(find_user_file(args.file, "arch", data_root=REPO_ROOT), [parse_set(s) for s in args.set])
    elif args.command == "stack":
        from rdusim.config.stack import load_stack
        load_stack(args.name, [parse_set(s) for s in args.set])
    elif args.command == "graph":
        from rdusim.config.model import load_model
        load_model(args.model)
    # report: renders what an earlier shown command wrote; parsing it is what can be checked here


def test_the_docs_show_commands():
    cmds = shown_commands()
    assert "rdusim run workloads/coe150.yaml --report --trace" in cmds            # a code block
    assert any("cache.prefetch=true" in c for c in cmds)                         # the text
    assert not any(c.startswith("rdusim run WORKLOAD") or "<name>" in c for c in cmds)


@pytest.mark.parametrize("cmd", shown_commands())
def test_every_shown_command_parses_and_finds_its_files(cmd, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    check_command(cmd)


@pytest.mark.slow
def test_every_command_in_the_text_runs(tmp_path):
    """The complete commands of the text (the code blocks run in test_readme_commands), from a
    clean copy: exit 0 (validate: 0 or 1, the documented misses), no traceback."""
    tour = set(readme_commands((REPO_ROOT / "README.md").read_text()))
    cmds = [c for c in shown_commands() if not any(c in line for line in tour)]
    clone = clean_copy(tmp_path / "clone")
    for cmd in cmds:
        proc = subprocess.run([sys.executable, "-m", "rdusim.cli", *shlex.split(cmd)[1:]], cwd=clone,
                              capture_output=True, text=True, timeout=900,
                              env={**os.environ, "PYTHONPATH": str(clone)})
        ok = (0, 1) if cmd.split()[1] == "validate" else (0,)
        assert proc.returncode in ok, f"{cmd}\n{proc.stderr[-3000:]}"
        assert "Traceback" not in proc.stderr, f"{cmd}\n{proc.stderr[-3000:]}"


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


@pytest.mark.slow
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


@pytest.mark.slow
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
