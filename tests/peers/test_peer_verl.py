"""veRL 0.9.1's own reward path: ``RewardLoopWorker.compute_score_batch`` (the reward loop's worker,
built from its config as veRL builds it, in process) and ``RewardLoopManager.compute_rm_score`` (the
same worker as a Ray actor on a local CPU-only Ray), with
``reward.custom_reward_function`` pointing at ``pkg://grpo_plugins.verl``. The legacy
``NaiveRewardManager`` / ``BatchRewardManager`` run in tests/test_verl.py, which the peer script
runs in this venv too."""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from verl import DataProto
from verl.experimental.reward_loop.reward_loop import RewardLoopManager, RewardLoopWorker
from verl.utils import hf_tokenizer

from grpo_plugins.verl import GroundTruthError

VERL_CONFIG = """\
plugins: [math, format]
rewards: [{name: math, options: {workers: 1}}]
data_sources:
  openai/gsm8k: [{name: math, options: {workers: 1}}, {name: format, weight: 0.1, options: {pattern: '<answer>.*</answer>'}}]
"""


def test_the_pinned_release():
    assert version("verl") == "0.9.1"


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    from grpo_plugins.grpo.tiny import build_tokenizer

    path = tmp_path_factory.mktemp("tok")
    build_tokenizer().save_pretrained(path)
    return path


def verl_config(tok_dir, tmp_path):
    """The parts of veRL's trainer config that the reward loop reads: the reward section, the tokenizer."""
    (tmp_path / "verl-rewards.yaml").write_text(VERL_CONFIG)
    return OmegaConf.create({
        "actor_rollout_ref": {"model": {"path": str(tok_dir), "tokenizer_path": None}},
        "reward": {"num_workers": 1, "reward_model": {"enable": False},
                   "reward_manager": {"source": "register", "name": "naive"},
                   "custom_reward_function": {"path": "pkg://grpo_plugins.verl", "name": "compute_score",
                                              "reward_kwargs": {"config": str(tmp_path / "verl-rewards.yaml")}}}})


def worker(tok_dir, tmp_path):
    return RewardLoopWorker(verl_config(tok_dir, tmp_path))


def batch(tok, responses, truths, source="openai/gsm8k"):
    """A DataProto as veRL's rollout leaves it: left-padded prompts, right-padded responses."""
    prompts = [tok(f"Q{i}: 36+36? ", add_special_tokens=False)["input_ids"] for i in range(len(responses))]
    resp = [tok(r, add_special_tokens=False)["input_ids"] for r in responses]
    P, R, pad = max(map(len, prompts)), max(map(len, resp)), tok.pad_token_id
    p_ids = torch.tensor([[pad] * (P - len(p)) + p for p in prompts])
    r_ids = torch.tensor([r + [pad] * (R - len(r)) for r in resp])
    mask = torch.tensor([[0] * (P - len(p)) + [1] * (len(p) + len(r)) + [0] * (R - len(r))
                         for p, r in zip(prompts, resp)])
    n = len(responses)
    return DataProto.from_dict(
        tensors={"prompts": p_ids, "responses": r_ids, "attention_mask": mask, "input_ids": torch.cat([p_ids, r_ids], 1)},
        non_tensors={"data_source": np.array([source] * n, dtype=object),
                     "reward_model": np.array([{"ground_truth": t} for t in truths], dtype=object),
                     "extra_info": np.array([{"index": i} for i in range(n)], dtype=object)})


def test_compute_score_batch_through_the_reward_loop_worker(tok_dir, tmp_path):
    w = worker(tok_dir, tmp_path)
    # veRL decodes with skip_special_tokens=True: the EOS token is gone before compute_score
    data = batch(w.input_tokenizer, ["<answer>72</answer></s>", "<answer>71</answer>", "72"], ["72", "72", "72"])
    out = w.loop.run_until_complete(w.compute_score_batch(data))
    assert [o["reward_score"] for o in out] == pytest.approx([1.1, 0.1, 1.0])
    assert [o["reward_extra_info"]["math"] for o in out] == [1.0, 0.0, 1.0]


def test_a_none_ground_truth_names_reward_model_ground_truth(tok_dir, tmp_path):
    w = worker(tok_dir, tmp_path)
    data = batch(w.input_tokenizer, ["<answer>72</answer>"], [None])
    with pytest.raises(GroundTruthError, match=r"reward_model\.ground_truth is None \(data_source 'openai/gsm8k'\)"):
        w.loop.run_until_complete(w.compute_score_batch(data))


def test_compute_rm_score_on_a_local_ray(tok_dir, tmp_path):
    """RewardLoopManager as veRL's trainer drives it: RewardLoopWorker as a Ray actor on a local,
    CPU-only Ray (about 15 s to start here), the scores assembled onto the last response token."""
    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        manager = RewardLoopManager(verl_config(tok_dir, tmp_path))
        data = batch(hf_tokenizer(str(tok_dir)), ["<answer>72</answer>", "<answer>71</answer>"], ["72", "72"])
        out = manager.compute_rm_score(data)
    finally:
        ray.shutdown()
    scores = out.batch["rm_scores"]
    last = data.batch["attention_mask"][:, -data.batch["responses"].shape[1]:].sum(1) - 1
    assert [scores[i, last[i]].item() for i in range(2)] == pytest.approx([1.1, 0.1])
    assert scores.sum().item() == pytest.approx(1.2)
    assert list(out.non_tensor_batch["math"]) == [1.0, 0.0]
