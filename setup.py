"""Package list for setuptools: every top-level package of pyproject's package-dir with all of its
sub-packages (a fixed list once left ``grpo_code.backends`` out of the wheel)."""

import tomllib
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
DIRS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]


def packages() -> list[str]:
    out = []
    for name, folder in DIRS.items():
        out.append(name)
        out += [f"{name}.{sub}" for sub in find_packages(str(ROOT / folder))]
    return out


setup(packages=packages())
