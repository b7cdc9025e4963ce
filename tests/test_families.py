"""Machine families: the two registration tables agree, every schema answers the machine
interface, every family the engine interface, and no code outside a family (its schema,
its engine package, the registration) asks which family a platform is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rdusim.config.arch import SCHEMAS, load_arch
from rdusim.config.arch_common import MemoryTier
from rdusim.config.machine import Machine
from rdusim.config.stack import load_stack
from rdusim.engine.families import FAMILIES, family
from rdusim.engine.family import Family
from rdusim.graph.tensor import DType

ROOT = Path(__file__).resolve().parents[1]
ARCHS = sorted(p.name for p in (ROOT / "arch").glob("*.yaml"))
# where asking for a family is the point: the schemas, the family engine packages, the registrations
FAMILY_FILES = re.compile(r"^rdusim/(config/arch(_\w+)?\.py|engine/(rdu|gpu|tpu)/.*|engine/famil(y|ies)\.py)$")
FAMILY_TEST = re.compile(r"ArchKind\.[A-Z]+\b|isinstance\([^)]*\b(GpuArch|RduArch|TpuArch)\b|\.kind\.value\s*==")


def test_the_two_registration_tables_agree():
    assert set(SCHEMAS) == set(FAMILIES)
    for kind, fam in FAMILIES.items():
        assert fam.kind == kind and fam.schema is SCHEMAS[kind] and isinstance(fam, Family)


@pytest.mark.parametrize("name", ARCHS)
def test_every_machine_answers_the_interface(name):
    arch = load_arch(ROOT / "arch" / name)
    assert isinstance(arch, Machine) and arch.KIND == arch.kind and arch.devices_per_node >= 1 <= arch.max_tp
    assert isinstance(arch.device_hbm, MemoryTier) and isinstance(arch.host_dram, MemoryTier)
    assert arch.spill_tier is None or isinstance(arch.spill_tier, MemoryTier)
    assert arch.LAUNCH_MODES and arch.DEVICE
    assert load_stack(arch.DEFAULT_STACK).kind == arch.kind          # the default stack drives this machine
    assert arch.native_rate(DType.BF16) > 0 and arch.at_compute(DType.BF16) is arch
    fam = family(arch)
    links, paths = fam.copy_links(arch, arch.devices_per_node)
    names = {n for n, _, _ in links}
    assert len(paths) == arch.devices_per_node and all(set(p) <= names for p in paths)
    assert all(p[-1] == f"hbm{i}" for i, p in enumerate(paths))       # every copy ends in the device's HBM


def test_no_code_outside_a_family_asks_which_family_a_platform_is():
    bad = []
    for path in sorted((ROOT / "rdusim").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if FAMILY_FILES.match(rel):
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if FAMILY_TEST.search(line):
                bad.append(f"{rel}:{i}: {line.strip()}")
    assert not bad, "\n".join(bad)


def test_the_check_sees_a_family_test():
    assert FAMILY_TEST.search("if arch.kind == ArchKind.RDU:")
    assert FAMILY_TEST.search("isinstance(a, GpuArch)") and FAMILY_TEST.search('stack.kind.value == "rdu"')
    assert not FAMILY_FILES.match("rdusim/memory.py") and FAMILY_FILES.match("rdusim/engine/tpu/step.py")
