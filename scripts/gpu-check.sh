#!/usr/bin/env bash
# The GPU check (docs/gpu.md): on a CUDA machine, in under 5 minutes, a few GRPO steps of a Llama- and
# a Qwen2-architecture model with each rollout backend (sample, generate, vllm when installed), bf16,
# with and without LoRA and gradient checkpointing; with 2+ GPUs also two processes through
# `accelerate launch` with DDP, FSDP2 and ZeRO-3 (deepspeed installed); then TRL's GRPOTrainer on the
# same model and settings. Asserts no error, finite losses, a rising reward and identical masks;
# prints step time, generation tokens/s and peak memory. Exit 0 = every check held.
#   bash scripts/gpu-check.sh [OUT_DIR]          (default runs/gpu-check)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${1:-runs/gpu-check}
"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "gpu-check: no CUDA device (torch.cuda.is_available() is False)")'
"$PY" -c 'import trl, peft, accelerate' || { echo "gpu-check: pip install -e '.[dev]' first (and '.[vllm]' for the vllm backend)"; exit 1; }
# vLLM and ZeRO-3 are part of what the check claims: missing, it fails rather than skipping them
"$PY" -c 'import vllm' || { echo "gpu-check: FAIL: vllm is not installed (docs/gpu.md, the GPU + vLLM install line)"; exit 1; }
"$PY" -c 'import deepspeed' || { echo "gpu-check: FAIL: deepspeed is not installed (pip install deepspeed==0.19.8)"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c 'import torch, transformers, accelerate, trl; print("torch", torch.__version__, "transformers", transformers.__version__, "accelerate", accelerate.__version__, "trl", trl.__version__)'
start=$(date +%s)
"$PY" scripts/gpu_check.py all "$OUT"
echo "gpu-check: $(( $(date +%s) - start )) s"
