"""docs/plugin-guide.md is installable as written: its blocks, copied into an empty folder, build,
pip-install and pass their own test, with the plugin installed and without it."""

import json
import os
import re
import site
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "plugin-guide.md"
EXAMPLE = ROOT / "examples" / "grpo-length-plugin"


def guide_files() -> dict[str, str]:
    """Every fenced block whose first line is ``# <relative path>``: {path: text without that line}."""
    out = {}
    for body in re.findall(r"```[a-z]*\n(.*?)```", GUIDE.read_text(), flags=re.S):
        first, _, rest = body.partition("\n")
        m = re.fullmatch(r"# ([\w./-]+\.(?:py|toml))", first.strip())
        if m:
            out[m.group(1)] = rest
    return out


def test_the_guide_is_the_whole_example_package():
    files = guide_files()
    assert set(files) == {"grpo_length_plugin.py", "pyproject.toml", "tests/test_length.py"}
    for rel, text in files.items():
        assert (EXAMPLE / rel).read_text() == text, f"{rel} in the guide differs from the example"


def layered_venv(env_dir: Path) -> str:
    """A venv that sees this interpreter's packages (this venv's too, not only the base Python's); its python."""
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    own = subprocess.run([str(py), "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True,
                         text=True, check=True).stdout.strip()
    # addsitedir also runs the .pth files there (an editable install's finder)
    lines = [f"import site; site.addsitedir({d!r})" for d in site.getsitepackages()]
    Path(own, "_layered_on_parent.pth").write_text("\n".join(lines) + "\n")
    return str(py)


def _run(cmd, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    assert res.returncode == 0, f"{cmd}\n{res.stdout}\n{res.stderr}"
    return res


def test_the_guide_installs_lists_its_reward_and_its_test_passes(tmp_path):
    folder = tmp_path / "my-plugin"
    for rel, text in guide_files().items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GRPO_PLUGINS_LOAD")}
    pytest_cmd = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
    # not installed: the fixtures register the module the test imports from the folder
    res = _run([sys.executable, *pytest_cmd], cwd=folder, env=env)
    assert "1 passed" in res.stdout
    # installed (a fresh venv on top of this one's packages; pip builds it from pyproject.toml alone)
    py = layered_venv(tmp_path / "venv")
    _run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", "--no-build-isolation",
          "--no-index", str(folder)], env=env)
    res = _run([py, "-m", "grpo_plugins", "rewards", "--json"], cwd=tmp_path, env=env)
    [length] = [r for r in json.loads(res.stdout) if r["name"] == "length"]
    assert length["plugin"] == "length" and length["description"] == "closeness of the completion length to a target"
    # the installed copy is what the entry point loads; the plugin's own test still passes
    res = _run([py, *pytest_cmd], cwd=folder, env=env)
    assert "1 passed" in res.stdout
