"""The commands the documented figures come from, each run once per regeneration.

A figure asks for a command's printed output (:meth:`Runs.output`) or for the metrics its
run wrote (:meth:`Runs.metrics`); commands run in this process through the ``rdusim``
command line, results into a temporary folder, and are remembered for the other figures.
"""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping
from rdusim import cli


class CommandFailed(RuntimeError):
    pass


class Runs:
    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="rdusim-docs-")
        self._out: dict[str, tuple[int, str, Path | None]] = {}
        self._memo: dict[str, Any] = {}

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> "Runs":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self, command: str, ok: tuple[int, ...]) -> tuple[int, str, Path | None]:
        if command not in self._out:
            args = shlex.split(command)
            if args[0] != "rdusim":
                raise ValueError(f"not an rdusim command: {command}")
            args = args[1:]
            out_dir = None
            if args and args[0] in ("run", "plan"):
                out_dir = Path(self._tmp.name) / f"run{len(self._out)}"
                args += ["--out", str(out_dir)]
            stdout, stderr = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                code = cli.main(args)
            self._out[command] = (code, stdout.getvalue(), out_dir)
        code, text, out_dir = self._out[command]
        if code not in ok:
            raise CommandFailed(f"`{command}` exited {code}:\n{text[-2000:]}")
        return self._out[command]

    def memo(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()`` once per regeneration (a result several figures read)."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def output(self, command: str, ok: tuple[int, ...] = (0,)) -> str:
        """What ``command`` (``rdusim ...``, as written in the docs) printed."""
        return self._run(command, ok)[1]

    def exit_code(self, command: str, ok: tuple[int, ...] = (0, 1)) -> int:
        return self._run(command, ok)[0]

    def results(self, command: str) -> Mapping[str, Any]:
        """The results.json that ``rdusim run ...`` (or ``rdusim plan ...``) wrote."""
        def read():
            out_dir = self._run(command, (0,))[2]
            if out_dir is None:
                raise ValueError(f"not a run: {command}")
            return json.loads((out_dir / "results.json").read_text())
        return self.memo(f"results {command}", read)

    def metrics(self, command: str) -> Mapping[str, Any]:
        """The metrics of the results.json that ``rdusim run ...`` wrote."""
        return self.results(command)["metrics"]

    def extra(self, command: str) -> Mapping[str, Any]:
        """Its ``extra`` (study context)."""
        return self.results(command)["extra"]


def section(text: str, heading: str) -> str:
    """The paragraph of a command's output that starts with the line ``heading...``
    (up to the next blank line)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(heading):
            j = i
            while j < len(lines) and lines[j].strip():
                j += 1
            return "\n".join(lines[i:j])
    raise CommandFailed(f"no output section starting {heading!r}")
