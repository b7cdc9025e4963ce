"""Build hook: a wheel carries the shipped data (arch/, models/, workloads/, references/,
stacks/, clusters/, data/) under rdusim/_data, so ``pip install .`` works without the repository. The globs
are [tool.setuptools.package-data] of pyproject.toml (paths inside rdusim/_data); the
folders stay at the top level of the repository, and editable installs read them there."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class build_py_with_data(build_py):
    def run(self):
        super().run()
        globs = (self.distribution.package_data or {}).get("rdusim", [])
        target = Path(self.build_lib) / "rdusim" / "_data"
        for pattern in globs:
            if not pattern.startswith("_data/"):
                continue
            for src in sorted(ROOT.glob(pattern[len("_data/"):])):
                if src.is_file():
                    dest = target / src.relative_to(ROOT)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dest)


setup(cmdclass={"build_py": build_py_with_data})
