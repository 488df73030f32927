"""End to end: pip-install the example third-party plugin and see its reward with no other step."""

import json
import subprocess
import sys
from pathlib import Path

from test_first_hour_guide import layered_venv

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "grpo-length-plugin"


def test_installed_plugin_is_discovered_and_scores(tmp_path):
    # the parent's packages stay visible (grpo-plugins itself); the example goes only into the venv,
    # with no pip of its own, so the installing pip and setuptools are this environment's (offline)
    py = layered_venv(tmp_path / "venv")
    subprocess.run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", str(EXAMPLE)], check=True, capture_output=True, timeout=300)
    res = subprocess.run([py, "-m", "grpo_plugins", "plugins"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    plugins = {p["name"]: p for p in json.loads(res.stdout)}
    assert plugins["length"]["version"] == "0.2.0" and plugins["length"]["rewards"] == ["length"]
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"prompt": "p", "completion": "x" * 75}) + "\n")
    out = tmp_path / "out.jsonl"
    res = subprocess.run([py, "-m", "grpo_plugins", "score", "--reward", "target_length", "--option",
                          "target_length.target=50", "--input", str(inp), "--output", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(out.read_text())["rewards"] == {"target_length": 0.5}
    # the plugin is not installed in the test's own interpreter: discovery came from the install
    own = subprocess.run([sys.executable, "-m", "grpo_plugins", "plugins"], capture_output=True, text=True, timeout=120)
    assert "length" not in {p["name"] for p in json.loads(own.stdout)}
