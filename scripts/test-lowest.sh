#!/usr/bin/env bash
# The test suite's GPU-path subset once more at the lowest transformers the `vllm` extra allows
# (pyproject.toml), in a separate virtual environment: vLLM pins transformers below what the main
# pass tests, so the fallback branches (gradient_checkpointing_enable, the past_key_values keyword)
# run here. torch stays the CI's CPU build: vLLM's own torch pin needs CUDA and is the GPU check's.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${LOWEST_VENV:-${TMPDIR:-/tmp}/grpo-plugins-lowest}
LOWEST=$("$PY" - <<'PYEOF'
import re, tomllib
extra = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["vllm"]
spec = next(s for s in extra if s.startswith("transformers"))
print(re.search(r">=\s*([0-9][^,\s]*)", spec).group(1))
PYEOF
)
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# CPU torch: the extra's vllm (torch==2.14.0, CUDA 13) is not installed here, only its transformers floor
"$VENV/bin/python" -m pip install -q "torch==2.13.0"
DS_BUILD_OPS=0 "$VENV/bin/python" -m pip install -q -e ".[dev]" "transformers==$LOWEST"
"$VENV/bin/python" -c "import transformers; assert transformers.__version__ == '$LOWEST', transformers.__version__"
echo "lowest transformers: $LOWEST"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/test_decode.py tests/test_vllm_rollout.py \
    tests/test_gpu_path.py tests/test_trainer.py tests/test_logprobs.py
