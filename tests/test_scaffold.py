"""``grpo-plugins new-plugin``: the package it writes installs, is listed by ``rewards`` and passes its own
test as generated (outcome and step); a bad name or folder is one ``Error:`` line."""

import fnmatch
import json
import os
import sys
import tomllib
from pathlib import Path

import pytest

from helpers_runs import run_cli
from test_first_hour_guide import _run, layered_venv

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "grpo_plugins" / "templates" / "plugin"
# a plugin's own test must see installed plugins as a user's shell does
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GRPO_PLUGINS_LOAD")}


def _pytest(python, folder):
    res = _run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=folder, env=CLEAN_ENV)
    assert "1 passed" in res.stdout, res.stdout
    return res


def test_generated_packages_install_are_listed_and_pass_their_own_tests(tmp_path):
    out = run_cli("new-plugin", "brevity", "--dir", str(tmp_path / "outcome"))
    assert out.returncode == 0, out.stderr
    assert sorted(Path(p).relative_to(tmp_path).as_posix() for p in out.stdout.split()) == [
        "outcome/README.md", "outcome/grpo_brevity_plugin.py", "outcome/pyproject.toml", "outcome/tests/test_brevity.py"]
    out = run_cli("new-plugin", "stepwise", "--step", "--dir", str(tmp_path / "step"))
    assert out.returncode == 0, out.stderr
    pyproject = tomllib.loads((tmp_path / "step" / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"] == {"grpo_plugins": {"stepwise": "grpo_stepwise_plugin"}}
    for folder in ("outcome", "step"):  # as generated, before installing: the fixtures register the module
        _pytest(sys.executable, tmp_path / folder)
    py = layered_venv(tmp_path / "venv")
    _run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", "--no-build-isolation",
          "--no-index", str(tmp_path / "outcome"), str(tmp_path / "step")], env=CLEAN_ENV)
    res = _run([py, "-m", "grpo_plugins", "rewards", "--json"], cwd=tmp_path, env=CLEAN_ENV)
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert (rows["brevity"]["plugin"], rows["brevity"]["granularity"]) == ("brevity", "outcome")
    assert (rows["stepwise"]["plugin"], rows["stepwise"]["granularity"]) == ("stepwise", "step")
    assert [o["name"] for o in rows["brevity"]["options"]] == ["answer_column"]
    for folder in ("outcome", "step"):  # installed: the entry point loads the installed copy; still green
        _pytest(py, tmp_path / folder)
    # the installed reward scores through the ordinary CLI too
    (tmp_path / "in.jsonl").write_text(json.dumps({"completion": "so\n4", "answer": "4"}) + "\n")
    _run([py, "-m", "grpo_plugins", "score", "--reward", "brevity", "--input", str(tmp_path / "in.jsonl"),
          "--output", str(tmp_path / "out.jsonl")], cwd=tmp_path, env=CLEAN_ENV)
    assert json.loads((tmp_path / "out.jsonl").read_text())["reward"] == 1.0


@pytest.mark.parametrize("name, message", [
    ("9lives", "plugin name '9lives' must be a lowercase Python identifier"),
    ("my-reward", "plugin name 'my-reward' must be a lowercase Python identifier"),
    ("class", "plugin name 'class' must be a lowercase Python identifier"),
    ("format", "plugin name 'format' clashes with the installed reward 'format' of plugin 'format'"),
    ("math", "plugin name 'math' clashes with the installed reward 'math' of plugin 'math'"),
])
def test_a_bad_name_is_one_error_line_and_writes_nothing(tmp_path, name, message):
    out = run_cli("new-plugin", name, "--dir", str(tmp_path / "pkg"))
    assert out.returncode == 1
    [line] = out.stderr.strip().splitlines()
    assert line.startswith(f"Error: {message}")
    assert not (tmp_path / "pkg").exists()


def test_a_folder_in_use_is_refused(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "keep.txt").write_text("mine")
    out = run_cli("new-plugin", "fresh", "--dir", str(tmp_path / "pkg"))
    assert out.returncode == 1
    assert out.stderr.strip() == f"Error: {tmp_path / 'pkg'}: already exists and is not an empty folder; give --dir a new folder"
    assert [p.name for p in (tmp_path / "pkg").iterdir()] == ["keep.txt"]


def test_every_template_ships_in_the_wheel():
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["grpo_plugins"]
    templates = [p.relative_to(ROOT / "grpo_plugins").as_posix() for p in TEMPLATES.rglob("*") if p.is_file()]
    assert templates and all(any(fnmatch.fnmatch(t, g) for g in globs) for t in templates)
