"""Install pins (issue 27): the vllm extra names the torch vLLM 0.33 pins, the CPU scripts keep their own
torch, and docs/gpu.md gives both install lines with the GPU line's driver requirement."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _torch_pin(path: str) -> str:
    return re.search(r'"torch==([0-9.]+)"', (ROOT / path).read_text()).group(1)


def test_vllm_extra_pins_vllms_torch_and_the_cpu_scripts_their_own():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    # vllm 0.33.0's wheel metadata: torch==2.14.0; an extra without it reads as co-installing with any torch
    assert "torch==2.14.0" in extras["vllm"]
    assert _torch_pin("scripts/install.sh") == _torch_pin("scripts/test-lowest.sh") == "2.13.0"
    doc = (ROOT / "docs/gpu.md").read_text()
    assert 'pip install "torch==2.13.0" && pip install -e \'.[dev]\'' in doc
    assert 'pip install "torch==2.14.0" && pip install -e \'.[dev,vllm]\'' in doc
    assert "driver >= 580" in doc
