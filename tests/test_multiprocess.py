"""Two training processes (torchrun, gloo on CPU) take the same optimizer step as one process.

Each process keeps whole groups (every G completions of a prompt on one process), batch-scaled
advantages use the std over both processes, the dapo token count is all-reduced, and DDP averages
the gradients: together that must give the single-process gradient on the same prompts and
completions. This is the multi-GPU path of ``accelerate launch``, run on CPU.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import torch

from grpo_plugins.grpo import tiny

HELPER = Path(__file__).with_name("helpers_ddp.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd, cwd):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=cwd, check=False)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]


def test_two_processes_give_the_single_process_gradient(tmp_path):
    d = tiny.build(tmp_path / "tiny", n_train=32, n_eval=2, n_sft=8, hidden_size=32, layers=2, heads=2, seed=0)
    outs = {}
    for world in (1, 2):
        out = tmp_path / f"out-{world}"
        out.mkdir()
        cfg = {
            "model": {"name_or_path": str(d / "model")},
            "data": {"train": str(d / "train.jsonl"), "chat_template": False},
            "rollout": {"num_generations": 4, "max_new_tokens": 10, "temperature": 1.5},
            "train": {"steps": 1, "prompts_per_step": 4, "learning_rate": 1e-3, "seed": 0, "beta": 0.05,
                      "loss_type": "dapo", "scale_rewards": "batch", "torch_threads": 1},
            "log": {"run_dir": str(tmp_path / f"run-{world}"), "progress": False, "tensorboard": False},
            "checkpoint": {"every": 0},
            "rewards": [{"name": "digit_share"}],
        }
        (out / "cfg.json").write_text(json.dumps(cfg))
        launcher = [sys.executable] if world == 1 else [
            sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port())]
        _run(launcher + [str(HELPER), str(out / "cfg.json"), str(out)], cwd=tmp_path)
        outs[world] = [torch.load(out / f"rank{r}-of-{world}.pt", weights_only=False) for r in range(world)]
    single, (r0, r1) = outs[1][0], outs[2]
    assert r0["world"] == r1["world"] == 2
    # whole groups: each process saw every prompt it holds G times, and the two share none
    for r in (r0, r1):
        assert all(r["prompts"].count(p) == 4 for p in r["prompts"]) and len(r["prompts"]) == 8
    assert not set(r0["prompts"]) & set(r1["prompts"])
    assert sorted(r0["prompts"] + r1["prompts"]) == sorted(single["prompts"])
    # DDP left both processes with one gradient, and it is the single-process one
    names = list(single["grads"])
    assert all(torch.equal(r0["grads"][n], r1["grads"][n]) for n in names)
    assert max(float(single["grads"][n].abs().max()) for n in names) > 1e-4  # a real update, not zeros
    for n in names:
        assert torch.allclose(r0["grads"][n], single["grads"][n], rtol=1e-4, atol=1e-7), n
