"""Issue 11, item 1: relative paths in a workload are looked up beside the workload first,
then in the shipped data; the run prints which files it used; shipped workloads and arch
files can be named from any folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from rdusim.cli import main
from rdusim.config.workload import REPO_ROOT, load_workload
from rdusim.paths import candidates, find_user_file


def _workload_outside(tmp_path: Path) -> Path:
    wl = tmp_path / "mine" / "chat.yaml"
    wl.parent.mkdir()
    shutil.copy(REPO_ROOT / "workloads" / "llama2_7b_chat.yaml", wl)
    return wl


def test_arch_beside_the_workload_wins_over_the_shipped_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    wl = _workload_outside(tmp_path)
    local = wl.parent / "arch" / "sn40l.yaml"
    local.parent.mkdir()
    data = yaml.safe_load((REPO_ROOT / "arch" / "sn40l.yaml").read_text())
    data["name"] = "sn40l-local"
    local.write_text(yaml.safe_dump(data))
    loaded = load_workload(wl)
    assert loaded.arch_files["sn40l"] == str(local) and loaded.archs["sn40l"].name == "sn40l-local"
    assert loaded.arch_files["dgx_h100"] == str(REPO_ROOT / "arch" / "dgx_h100.yaml")   # none beside it
    assert main(["run", str(wl), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert f"arch sn40l: {local}" in out and f"arch dgx_h100: {REPO_ROOT / 'arch' / 'dgx_h100.yaml'}" in out


def test_missing_arch_names_every_place_tried(tmp_path, capsys):
    wl = _workload_outside(tmp_path)
    wl.write_text(wl.read_text().replace("arch/dgx_a100.yaml", "arch/nosuch.yaml"))
    assert main(["run", str(wl), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "platforms.dgx_a100.arch" in err and str(wl.parent / "arch" / "nosuch.yaml") in err
    assert str(REPO_ROOT / "arch" / "nosuch.yaml") in err


def test_shipped_files_by_name_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert find_user_file("coe150", "workloads") == REPO_ROOT / "workloads" / "coe150.yaml"
    assert find_user_file("workloads/coe150.yaml", "workloads") == REPO_ROOT / "workloads" / "coe150.yaml"
    assert find_user_file("sn40l", "arch") == REPO_ROOT / "arch" / "sn40l.yaml"
    (tmp_path / "coe150.yaml").write_text("x: 1\n")            # a local file of that name wins
    assert find_user_file("coe150.yaml", "workloads") == Path("coe150.yaml")
    assert main(["arch", "show", "arch/sn40l.yaml"]) == 0
    assert "sn40l" in capsys.readouterr().out


def test_candidates_order():
    assert candidates("arch/x.yaml", "/w/f.yaml", Path("/data")) == [Path("/w/arch/x.yaml"), Path("/data/arch/x.yaml")]
    assert candidates("/abs/x.yaml", "/w/f.yaml", Path("/data")) == [Path("/abs/x.yaml")]
