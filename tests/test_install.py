"""A regular (non-editable) install from a wheel works: the core alone, and with every extra.

The editable install the README uses hides packaging mistakes (a sub-package left out of the wheel
broke every command once), so these tests build the wheel and install it into fresh venvs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def run(cmd, cwd, timeout=600, **kw):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, **kw)
    assert res.returncode == 0, f"{cmd}: {res.stdout[-2000:]}\n{res.stderr[-4000:]}"
    return res


ALL_REQUIREMENTS_MET = """
import importlib.metadata as md
from packaging.requirements import Requirement
reqs = [Requirement(r) for r in md.requires("grpo-plugins")]
extras, todo = set(), ["all"]
while todo:
    e = todo.pop()
    extras.add(e)
    for r in reqs:
        if r.marker is not None and r.marker.evaluate({"extra": e}):
            if r.name == "grpo-plugins":
                todo += [x for x in r.extras if x not in extras]
            elif not r.specifier.contains(md.version(r.name), prereleases=True):
                print("unmet", r)
print("ok" if {"math", "code", "train"} <= extras else f"extras {extras}")
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", out, ROOT], cwd=out)
    (whl,) = out.glob("grpo_plugins-*.whl")
    return whl


def test_core_install_scores_without_torch(wheel, tmp_path):
    venv = tmp_path / "core"
    run([sys.executable, "-m", "venv", venv], cwd=tmp_path)
    py, exe = venv / "bin" / "python", venv / "bin" / "grpo-plugins"
    run([py, "-m", "pip", "install", "-q", wheel], cwd=tmp_path)
    probe = run([py, "-c", "import sys, grpo_plugins; print(grpo_plugins.__file__); "
                            "print(sorted(m for m in ('torch', 'transformers', 'sympy', 'docker') if m in sys.modules))"],
                cwd=tmp_path)
    where, heavy = probe.stdout.splitlines()
    assert where.startswith(str(venv)) and heavy == "[]"  # the core imports none of the extras
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text('{"completion": "<think>a</think><answer>1</answer>"}\n{"completion": "no tags"}\n')
    run([exe, "score", "--reward", "format", "--input", inp, "--output", out], cwd=tmp_path)
    assert [json.loads(line)["rewards"]["format"] for line in out.read_text().splitlines()] == [1.0, 0.0]
    res = run([exe, "plugins"], cwd=tmp_path)
    info = {p["name"]: p for p in json.loads(res.stdout)}
    assert info["format"]["errors"] == [] and "Traceback" not in res.stdout + res.stderr
    # a plugin whose extra is missing says the one-line fix
    assert info["math"]["errors"] == ["needs sympy: pip install 'grpo-plugins[math]'"]
    assert info["prm"]["errors"] == ["needs torch, transformers: pip install 'grpo-plugins[prm]'"]
    res = subprocess.run([exe, "train", str(ROOT / "configs" / "demo.yaml")], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 1 and res.stderr.strip().splitlines()[-1].startswith("Error: needs torch")


def test_full_install_loads_every_builtin_and_ships_the_sandbox_recipe(wheel, tmp_path):
    # the extras' packages come from this interpreter's site-packages (installing torch again would
    # take minutes); the package itself comes from the wheel
    venv = tmp_path / "all"
    run([sys.executable, "-m", "venv", "--system-site-packages", venv], cwd=tmp_path)
    py, exe = venv / "bin" / "python", venv / "bin" / "grpo-plugins"
    run([py, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", wheel], cwd=tmp_path)
    # every requirement of the [all] extra (through math, code, train) is met in this environment
    check = run([py, "-c", ALL_REQUIREMENTS_MET], cwd=tmp_path)
    assert check.stdout.split() == ["ok"], check.stdout
    probe = run([py, "-c", "import grpo_plugins, grpo_math, grpo_code, grpo_prm, grpo_format, grpo_sandbox, pathlib;"
                           "print(grpo_plugins.__file__);"
                           "print(pathlib.Path(grpo_sandbox.__file__).parent / 'recipe' / 'Dockerfile')"], cwd=tmp_path)
    where, recipe = probe.stdout.splitlines()
    assert where.startswith(str(venv)) and Path(recipe).is_file() and recipe.startswith(str(venv))
    res = run([exe, "plugins"], cwd=tmp_path)
    info = {p["name"]: p for p in json.loads(res.stdout)}
    assert {"format", "math", "code", "prm"} <= set(info)
    assert all(p["errors"] == [] for p in info.values()), info
    assert all(p["source"].startswith("entry point") for p in info.values())
    run([exe, "rewards", "--json"], cwd=tmp_path)
