"""Math-Shepherd labels on a rollout with a known wrong step, graded by the real `math` reward."""

import pytest

from grpo_plugins.host import RewardHost
from grpo_plugins.manager import PluginManager
from grpo_plugins.cycle.labeller import label_rollouts
from grpo_prm.model import StepFormat
from helpers_runs import PROMPT, RIGHT, WRONG_SECOND, Prover

# step 2 is wrong (5*2 is 10), so the answer is wrong too
ROLLOUT = {"prompt": PROMPT, "completion": WRONG_SECOND, "columns": {"answer": "10"}}


def stub_policy():
    """The scripted prover, slipping on every 4th continuation of the right first step: soft labels are fractions."""
    return Prover(slip={"2+3=5": 4})


@pytest.fixture(scope="module")
def host():
    with RewardHost([{"name": "math", "options": {"workers": 1}}], manager=PluginManager(allow=["math"])) as h:
        yield h


def test_known_wrong_step_gets_label_zero_and_the_good_step_a_soft_label(host):
    policy = stub_policy()
    records, stats = label_rollouts([ROLLOUT], policy, host, "math", StepFormat(split="blank_line"), n=4)
    [rec] = records
    text = rec["completion"]
    assert [text[s:e] for s, e, _ in rec["steps"]] == ["2+3=5", "5*2=11", "The answer is \\boxed{11}"]
    assert [v for _, _, v in rec["steps"]] == [0.75, 0.0, 0.0]  # soft: share of correct continuations
    assert rec["hard"] == [1.0, 0.0, 0.0]  # hard: any correct continuation
    assert rec["outcome"] is False and rec["answer"] == "10"
    # continuations start exactly at each step's end (no continuation for the last step)
    assert policy.calls == [PROMPT + "2+3=5"] * 4 + [PROMPT + "2+3=5\n\n5*2=11"] * 4
    assert stats.continuations == 8 and stats.labelled == 1


def test_budget_skips_whole_rollouts(host):
    good = {**ROLLOUT, "completion": RIGHT}
    records, stats = label_rollouts([good, ROLLOUT], stub_policy(), host, "math", StepFormat(), n=2, budget=5)
    assert len(records) == 1 and stats.skipped_budget == 1 and stats.continuations == 4
    assert records[0]["outcome"] is True and records[0]["steps"][-1][2] == 1.0
