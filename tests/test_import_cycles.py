"""The package has no import cycle, counting every import: module-level, inside functions
and under ``TYPE_CHECKING`` (an import inside a function that closes a cycle only hides it),
and the parent packages Python runs first (``import a.b.c`` runs ``a/b/__init__.py``).
An import inside a function stays only where it keeps something heavy or optional from
being loaded before it is needed; each such place is listed below with its reason."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (importing module, imported module or "*"): why the import waits until the function runs
LAZY = {
    ("rdusim.cli", "*"): "the command line loads a subcommand's machinery when that subcommand runs: "
                         "`rdusim --help` imports no simulator",
    ("rdusim.cli_show", "*"): "the show subcommands (part of the command line) load only what they show",
    ("rdusim.cli_report", "*"): "`rdusim report` loads the page renderer (matplotlib) or the sweep plots, "
                                "whichever the folder needs",
    ("rdusim.engine.rdu.pipeline", "rdusim.engine.rdu.pipeline_events"):
        "SimPy is loaded only when a kernel is simulated as events (a model run imports no SimPy: "
        "tests/test_model_run_imports.py)",
    ("rdusim.engine.coe.switching", "rdusim.engine.transfer"):
        "the SimPy flow network only when switches overlap in time (a CoE run without prefetch imports "
        "no SimPy: tests/test_model_run_imports.py)",
    ("rdusim.engine.gpu.hostcopy", "rdusim.engine.transfer"):
        "the SimPy flow network only when host copies are simulated as events",
    ("rdusim.fleet.command", "rdusim.report.figures"): "matplotlib only when the plan's plot is drawn",
    ("rdusim.sweep.plots", "rdusim.report.figures"): "matplotlib only when a sweep plot is drawn",
    ("rdusim.sweep.plots", "rdusim.report.render"): "the page renderer (matplotlib) only when a report is written",
    ("rdusim.studies.model_run", "rdusim.studies.offload_run"):
        "numpy only for experts offloaded to the host (a model run imports no numpy: "
        "tests/test_model_run_imports.py)",
    ("rdusim.studies.fusion", "rdusim.graph.monarch"):
        "an optional graph builder: a copy without it reports the benchmark naming it as bad input",
}


def _modules(root: Path, package: str) -> dict[str, Path]:
    out = {}
    for p in (root / package).rglob("*.py"):
        parts = list(p.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


def _resolve(name: str, mods) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(root: Path, package: str):
    """(edges: module -> {imported module: [lines]}, function-local imports: [(module, target, line)])
    of every module of ``package`` under ``root``, from the source (nothing is imported)."""
    mods = _modules(root, package)
    edges: dict[str, dict[str, list[int]]] = {m: {} for m in mods}
    local: list[tuple[str, str, int]] = []
    for m, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        in_function = {id(n) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                       for n in ast.walk(fn)}
        pkg = m if path.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            for name in names:
                target = _resolve(name, mods) if name.split(".")[0] == package else None
                if target is None or target == m:
                    continue
                if id(node) in in_function:
                    local.append((m, target, node.lineno))
                # the target and the packages above it that the importer is not already inside
                chain, up = [target], target.rpartition(".")[0]
                while up:
                    if up in mods and not (m == up or m.startswith(up + ".")):
                        chain.append(up)
                    up = up.rpartition(".")[0]
                for t in chain:
                    edges[m].setdefault(t, []).append(node.lineno)
    return edges, local


def cycles(edges) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def _describe(comp, edges) -> str:
    inside = set(comp)
    return "; ".join(f"{a} -> {b} (line {edges[a][b][0]})" for a in comp for b in sorted(edges[a]) if b in inside)


def test_rdusim_has_no_import_cycle():
    edges, _ = import_graph(ROOT, "rdusim")
    assert len(edges) > 150
    found = cycles(edges)
    assert not found, "import cycles: " + " | ".join(_describe(c, edges) for c in found)


def test_every_function_local_import_is_a_listed_lazy_one():
    _, local = import_graph(ROOT, "rdusim")
    unlisted = [f"{m} imports {t} inside a function (line {line})" for m, t, line in local
                if (m, t) not in LAZY and (m, "*") not in LAZY]
    assert not unlisted, ("import at module level, or list the lazy import with its reason in LAZY: "
                          + "; ".join(unlisted))
    used = {(m, t) for m, t, _ in local} | {(m, "*") for m, _, _ in local}
    assert not set(LAZY) - used, f"stale entries of LAZY: {sorted(set(LAZY) - used)}"


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = tmp_path / "pkg" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


@pytest.mark.parametrize("files,expected", [
    # a cycle closed by an import inside a function
    ({"__init__.py": "", "a.py": "from pkg.b import x\n", "b.py": "def f():\n    from pkg import a\n"},
     [["pkg.a", "pkg.b"]]),
    # a cycle through a package __init__ that re-exports a submodule
    ({"__init__.py": "", "sub/__init__.py": "from pkg.sub.c import y\n", "sub/c.py": "from pkg.d import z\n",
      "d.py": "from pkg.sub.e import w\n", "sub/e.py": ""},
     [["pkg.d", "pkg.sub", "pkg.sub.c"]]),
    # a cycle under TYPE_CHECKING and through a relative import
    ({"__init__.py": "", "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import x\n",
      "b.py": "from . import a\n"},
     [["pkg.a", "pkg.b"]]),
    # no cycle: a chain
    ({"__init__.py": "", "a.py": "from pkg.b import x\n", "b.py": "import os\n"}, []),
])
def test_the_check_finds_the_cycles_it_should(tmp_path, files, expected):
    edges, _ = import_graph(_package(tmp_path, files), "pkg")
    assert cycles(edges) == expected


def test_the_check_sees_function_local_imports(tmp_path):
    root = _package(tmp_path, {"__init__.py": "", "a.py": "def f():\n    import pkg.b\n", "b.py": ""})
    assert import_graph(root, "pkg")[1] == [("pkg.a", "pkg.b", 2)]
