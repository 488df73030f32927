"""veRL's compute_score on bad ground truth: the error names ``reward_model.ground_truth`` (the field
veRL users put in their parquet), the sample and its data_source, never only our column name."""

from __future__ import annotations

import pytest

from grpo_plugins import verl
from grpo_plugins.host import RewardError


@pytest.fixture(autouse=True)
def _no_env_config(monkeypatch):
    monkeypatch.delenv(verl.CONFIG_ENV, raising=False)


def test_a_missing_ground_truth_is_named_as_veRL_calls_it():
    with pytest.raises(verl.GroundTruthError) as ei:
        verl.compute_score_batch(["gsm8k", "gsm8k"], ["\\boxed{4}", "\\boxed{4}"], ["4", None])
    assert isinstance(ei.value, RewardError) and ei.value.index == 1
    assert str(ei.value) == ("reward 'math' (plugin 'math') failed on sample 1: reward_model.ground_truth is None "
                             "(data_source 'gsm8k'); reward 'math' reads it as column 'answer': give every row "
                             "of the dataset a reward_model.ground_truth")


def test_an_unusable_ground_truth_is_named_with_its_batch_index():
    with pytest.raises(verl.GroundTruthError, match=r"failed on sample 2: ValueError: column 'answer': gold answer "
                                                    r"must be a number or a string, got list \(column 'answer' is "
                                                    r"veRL's reward_model.ground_truth, data_source 'b'\)"):
        # sample 2 is the second of data_source 'b': the index is veRL's, not the group's
        verl.compute_score_batch(["a", "b", "b"], ["4", "4", "4"], ["4", "4", [1, 2]])


def test_a_reward_without_gold_is_not_stopped_by_a_missing_one():
    assert verl.compute_score("x", "<think>a</think><answer>b</answer>", None, reward="format")["score"] == 1.0
