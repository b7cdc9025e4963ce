"""Benchmark figures as data: ``--record`` on a benchmark stores what it printed in
``benchmarks/speed.json`` (one entry per benchmark, replaced when it runs again), with the
date, the machine (CPUs, load average) and the git commit it measured. The README's Speed
section is generated from this file (``python -m rdusim.docs``; ``rdusim/docs/figures_speed.py``),
so every timing it prints is one a benchmark run wrote, and a hand edit fails
``tests/test_readme_figures.py``. Timings depend on the machine and the moment: the file
keeps the machine reference (a fixed Python loop) beside them.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SPEED = ROOT / "benchmarks" / "speed.json"


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return out + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def record(name: str, figures: dict[str, Any], path: Path = SPEED) -> None:
    """Store ``figures`` as benchmark ``name`` in ``path`` (other entries kept)."""
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[name] = {
        "date": datetime.date.today().isoformat(),
        "commit": _commit(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        **figures,
    }
    path.write_text(json.dumps(dict(sorted(data.items())), indent=1) + "\n")
