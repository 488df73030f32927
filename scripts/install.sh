#!/usr/bin/env bash
# One command from a fresh machine to a working checkout: Python packages (CPU torch pinned first,
# so pip does not pull several GB of CUDA wheels), then the code sandbox's system parts
# (Docker engine, bubblewrap, the locally built sandbox image) when sandbox/install-host.sh exists.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if ! "$PY" -c 'import torch' 2>/dev/null; then
  # the CPU install's torch; the vllm extra needs torch 2.14.0 instead (the GPU line in docs/gpu.md)
  "$PY" -m pip install "torch==2.13.0"
fi
# DeepSpeed (dev extra: the ZeRO-3 tests) installs without compiling its CUDA ops; CPU ops build on first use
DS_BUILD_OPS=0 "$PY" -m pip install -e ".[dev]"

if [ -f sandbox/install-host.sh ] && [ "${GRPO_SKIP_SANDBOX:-0}" != 1 ]; then
  bash sandbox/install-host.sh
fi
echo "install: done"
