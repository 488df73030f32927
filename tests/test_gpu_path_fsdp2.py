"""FSDP2 on CPU (gloo, two processes): the trainer's sharded code paths against an unsharded copy.

accelerate runs an FSDP config without distribution when there is no CUDA, so the trainer itself
is not launched under FSDP2 here (scripts/gpu-check.sh does that on a GPU); tests/helpers_fsdp2.py
shards with torch's ``fully_shard`` as accelerate's FSDP2 path does and exercises sharding.py, the
vLLM push, synced generation and checkpoints (resume of the real model, a kill mid-save).
ZeRO-3 runs on DeepSpeed's CPU accelerator with gloo: tests/test_gpu_zero3.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HELPER = Path(__file__).with_name("helpers_fsdp2.py")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    from grpo_plugins.grpo.vllm import free_port

    import os

    out = tmp_path_factory.mktemp("fsdp2")
    # earlier tests may leave torchrun's variables in this process's environment (vLLM's rendezvous)
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    for _ in range(2):  # a port taken between free_port() and torchrun's bind: one retry with another
        proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                               "--master_port", str(free_port()), str(HELPER), str(out)], capture_output=True,
                              text=True, timeout=300, env=env)
        if proc.returncode == 0:
            break
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_parameters_are_sharded_and_generation_is_synced(ranks):
    for r in ranks:
        assert r["is_fsdp2"] and r["synced"] and r["decoder_is_hf"]


def test_vllm_push_sends_whole_weights_under_their_transformers_names(ranks):
    for r in ranks:
        assert r["push_names_ok"] and r["push_equal"]


def test_synced_generation_matches_the_unsharded_model_when_one_process_finishes_first(ranks):
    assert ranks[0]["gen_lengths"] == [1, 6] and ranks[1]["gen_lengths"] == [6, 6]
    assert all(r["gen_equal"] for r in ranks)


def test_sharded_reference_gives_the_unsharded_log_probs(ranks):
    for r in ranks:
        assert r["ref_frozen"] and r["ref_max_diff"] < 1e-5


def test_checkpoint_round_trip_through_the_full_state_dict(ranks):
    for r in ranks:
        assert r["ckpt_model_equal"]
        a, b = r["resume_next_loss"]
        assert a == b  # the resumed model computes the very same next-step loss
        assert r["resume_step_max_diff"] == 0.0  # the restored optimizer makes the very same next update
        # full fine-tuning: the save_pretrained weights are the resume state (no model.pt)
        assert {"model.safetensors", "optimizer.pt", "rng-0.pt", "rng-1.pt"} <= set(r["ckpt_files"])
        assert "model.pt" not in r["ckpt_files"]


def test_a_save_killed_midway_keeps_the_previous_checkpoint(ranks):
    for r in ranks:
        assert r["kill_interrupted"] and r["kill_keeps_previous"]


def test_lora_generate_under_fsdp2_runs_the_root_all_gather(ranks):
    for r in ranks:
        assert r["lora_generate_unregistered_fails"]  # why sharding.register_generate exists
        assert r["lora_generate_equal"]
