"""Layering: the engines never import the report (they emit trace events via rdusim.tracing)."""

import ast
import subprocess
import sys
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[1] / "rdusim" / "engine"


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def test_no_engine_module_imports_the_report():
    files = sorted(ENGINE.rglob("*.py"))
    assert len(files) > 10
    bad = {str(f.relative_to(ENGINE)): n for f in files for n in _imports(f)
           if n == "rdusim.report" or n.startswith("rdusim.report.")}
    assert not bad, bad


def test_the_check_sees_a_report_import(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("def g():\n    from rdusim.report.trace import TraceBuilder\nfrom rdusim import report\n")
    assert "rdusim.report.trace" in _imports(f) and "rdusim.report" in _imports(f)


def test_simulating_a_step_with_a_trace_loads_no_report_module():
    code = ("import sys; from rdusim.config.arch import load_arch; from rdusim.engine.rdu.step import simulate_step;"
            "from rdusim.graph.from_yaml import load_graph; import rdusim.engine.gpu.step;"
            "print(sorted(m for m in sys.modules if m.startswith('rdusim.report')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
