#!/usr/bin/env bash
# The peers' own reward clients against a real `grpo-plugins serve` on loopback (tests/peers/):
# OpenRLHF and veRL from their packages at pinned versions, slime's rm_hub from the pinned source
# copy in third_party/slime_rm_hub (PROVENANCE). A separate venv that sees the main install's
# packages (grpo-plugins, torch, transformers, aiohttp, fastapi), reused when present; each peer is
# installed --no-deps plus only the modules its client code imports: their full dependency sets
# (vllm, deepspeed, flash-attn) need a GPU and pin another torch. About a minute once installed
# (veRL's reward loop starts a local CPU-only Ray), a little more the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${PEERS_VENV:-${TMPDIR:-/tmp}/grpo-plugins-peers}
PEERS=(openrlhf==0.11.2 verl==0.9.1)
# what `import openrlhf.utils.agent`, `import verl` and its reward loop, and slime's rm_hub need
# beyond the main install: verl/protocol.py imports ray and tensordict at module level
NEEDS=(ray==2.60.0 tensordict==0.15.3 pyvers==0.2.3 omegaconf==2.4.0 antlr4-python3-runtime==4.13.2
       codetiming==1.4.0 pylatexenc==2.11)
[ -x "$VENV/bin/python" ] || "$PY" -m venv --system-site-packages "$VENV"
timeout 600 "$VENV/bin/python" -m pip install -q --no-deps "${PEERS[@]}" "${NEEDS[@]}"
"$VENV/bin/python" - <<'PYEOF'
from importlib.metadata import version
print("peers:", ", ".join(f"{p} {version(p)}" for p in ("openrlhf", "verl", "ray")),
      "+ slime rm_hub @", open("third_party/slime_rm_hub/PROVENANCE").read().split("commit: ")[1][:8])
PYEOF
# tests/peers/conftest.py collects nothing without GRPO_PEER_TESTS=1, so the main run skips it;
# tests/test_verl.py runs veRL's legacy Naive/BatchRewardManager here, where veRL imports
GRPO_PEER_TESTS=1 PYTHONPATH="$PWD/third_party/slime_rm_hub${PYTHONPATH:+:$PYTHONPATH}" \
    timeout 300 "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/peers tests/test_verl.py
