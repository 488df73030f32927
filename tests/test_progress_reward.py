"""The ``progress`` step reward: Q(prefix_j) - Q(prefix_{j-1}) under a prover, graded by ``math``."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grpo_plugins import PluginManager, RewardHost, Sample
from grpo_plugins.cli import cli
from grpo_progress.reward import OUTCOME_LABEL, ProgressReward, progress_values
from helpers_runs import PROMPT, RIGHT, WRONG_SECOND, Prover

GOLD = {"answer": "10"}
WRONG_FIRST = "2+3=6\n\n6*2=12\n\nThe answer is \\boxed{12}"


@pytest.fixture(scope="module")
def manager():
    return PluginManager(allow=["math", "progress"])


def reward(manager, generate, **options):
    r = ProgressReward({"prover": "unused", "outcome_options": {"workers": 1}, **options}, generate=generate)
    r.manager = manager
    return r


def score(manager, completions, generate, **options):
    r = reward(manager, generate, **options)
    try:
        return r.score([Sample(PROMPT, c, columns=dict(GOLD)) for c in completions])
    finally:
        r.close()


def values(result):
    return [v for _, _, v in result.steps]


def test_the_step_that_introduces_the_error_gets_minus_one_and_the_others_zero(manager):
    right, second, first = score(manager, [RIGHT, WRONG_SECOND, WRONG_FIRST], Prover(), n=3)
    assert values(right) == [0.0, 0.0, 0.0]
    assert values(second) == [0.0, -1.0, 0.0]
    assert values(first) == [-1.0, 0.0, 0.0]
    assert [WRONG_SECOND[s:e] for s, e, _ in second.steps] == ["2+3=5", "5*2=11", "The answer is \\boxed{11}"]
    assert second.value is None and second.info["q"] == [1.0, 1.0, 0.0, 0.0]


def test_continuations_start_at_each_step_end_and_identical_prefixes_are_estimated_once(manager):
    prover = Prover()
    results = score(manager, [WRONG_SECOND, WRONG_SECOND, RIGHT], prover, n=2)
    # prompt alone, after step 1 (shared by all three), after step 2 of each distinct completion
    assert prover.calls == [PROMPT] * 2 + [PROMPT + "2+3=5"] * 2 + [PROMPT + "2+3=5\n\n5*2=11"] * 2 \
        + [PROMPT + "2+3=5\n\n5*2=10"] * 2
    # each prefix is charged to the first completion that needs it: the sum is what was sampled
    assert [r.info["continuations"] for r in results] == [6, 0, 2]
    assert values(results[0]) == values(results[1])


def test_a_different_gold_answer_is_not_the_same_prefix(manager):
    prover = Prover()
    r = reward(manager, prover, n=1)
    out = r.score([Sample(PROMPT, RIGHT, columns={"answer": "10"}), Sample(PROMPT, RIGHT, columns={"answer": "11"})])
    r.close()
    assert [x.info["continuations"] for x in out] == [3, 3]  # prompt and two prefixes, each once per gold
    assert values(out[1]) == [0.0, 0.0, 0.0]  # never right: Q is 0 throughout


def test_q_differences_match_a_float64_reference(manager):
    # every 2nd continuation from the prompt slips, every 3rd after step 1, every 4th after step 2
    slip = {"": 2, "2+3=5": 3, "2+3=5\n\n5*2=10": 4}
    n = 12
    [res] = score(manager, [RIGHT], Prover(slip), n=n, batch_size=5)
    right = np.array([n - n // 2, n - n // 3, n - n // 4], dtype=np.float64) / n
    q = np.concatenate([right, [1.0]])
    np.testing.assert_allclose(res.info["q"], q, rtol=0, atol=1e-15)
    np.testing.assert_allclose(values(res), np.diff(q), rtol=0, atol=1e-15)
    assert res.info["continuations"] == 3 * n


def test_progress_values_reference():
    rng = np.random.default_rng(0)
    for k in range(1, 8):
        q = rng.integers(0, 9, size=k + 1) / 8.0
        got = progress_values(list(q))
        np.testing.assert_allclose(got, np.diff(q.astype(np.float64)), rtol=0, atol=1e-15)
        assert all(-1 <= v <= 1 for v in got) and abs(sum(got) - (q[-1] - q[0])) < 1e-12


def test_no_steps_budget_and_max_steps(manager):
    prover = Prover()
    none, over, capped, kept = score(manager, ["  \n\n ", WRONG_SECOND, RIGHT + "\n\nok", "2+3=5"], prover,
                                     n=2, budget=4, max_steps=3)
    assert none.steps == [] and none.value is None and none.info["status"] == "no_steps"
    assert capped.steps == [] and capped.info == {"status": "too_many_steps", "n_steps": 4, "continuations": 0}
    # WRONG_SECOND needs 6 continuations (prompt, two prefixes): over the budget of 4
    assert over.steps == [] and over.info["status"] == "over_budget" and over.info["continuations"] == 0
    # one step: Q(prompt) then the completion's own (wrong) outcome, within budget
    assert values(kept) == [-1.0] and kept.info["continuations"] == 2
    assert prover.calls == [PROMPT] * 2


def test_an_outcome_that_is_a_step_reward_is_refused(manager):
    from grpo_plugins import OptionsError

    r = ProgressReward({"prover": "unused", "outcome": "progress", "outcome_options": {"prover": "x"}},
                       generate=Prover())
    r.manager = manager
    with pytest.raises(OptionsError, match="outcome"):
        r.score([Sample(PROMPT, RIGHT, columns=dict(GOLD))])


def test_required_columns_are_the_outcome_rewards(manager):
    r = reward(manager, Prover())
    with RewardHost(["math"], manager=manager) as host:
        assert r.required_columns() == host.rewards["math"].required_columns()
    r.close()
    assert OUTCOME_LABEL == "outcome"


@pytest.fixture(scope="module")
def any_text_reward(manager):
    r = reward(manager, lambda texts, m: ["\n\nThe answer is \\boxed{10}" if i % 2 else "??" for i, _ in
                                          enumerate(texts)], n=2)
    yield r
    r.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(max_size=60), min_size=1, max_size=4), st.text(max_size=20))
def test_any_text_scores_without_raising(any_text_reward, completions, prompt):
    out = any_text_reward.score([Sample(prompt, c, columns=dict(GOLD)) for c in completions])
    assert len(out) == len(completions)
    for c, r in zip(completions, out):
        assert r.value is None
        for s, e, v in r.steps:
            assert 0 <= s < e <= len(c) and -1.0 <= v <= 1.0
        if r.steps:
            assert r.info["q"][-1] in (0.0, 1.0) and len(r.info["q"]) == len(r.steps) + 1


@pytest.fixture(scope="module")
def prover(tiny_lm_dir):
    return tiny_lm_dir


def test_the_prover_is_frozen_left_padded_and_takes_empty_texts(prover):
    from grpo_progress.prover import Prover

    greedy = Prover(str(prover), "cpu", temperature=0)
    assert not greedy.model.training and not any(p.requires_grad for p in greedy.model.parameters())
    # left padding: a short text continues the same beside a long one as alone
    assert greedy(["2+3=5", "Start at 2, add 3. 2+"], 5)[0] == greedy(["2+3=5"], 5)[0]
    assert len(greedy(["", ""], 5)) == 2  # no tokens at all: it starts from the start token
    assert greedy([], 5) == []


def test_end_to_end_through_score_with_a_tiny_prover(prover, tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    rows = [{"prompt": PROMPT, "completion": c, **GOLD} for c in (RIGHT, WRONG_SECOND, "")]
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["score", "--reward", "progress", "--input", str(inp), "--output", str(out)]
    for k, v in {"prover": str(prover), "n": 2, "max_new_tokens": 4, "device": "cpu",
                 "outcome_options": {"workers": 1}}.items():
        args += ["--option", f"progress.{k}={json.dumps(v)}"]
    res = CliRunner().invoke(cli, args, obj={"manager": PluginManager(allow=["math", "progress"])})
    assert res.exit_code == 0, res.output
    right, wrong, empty = [json.loads(line) for line in out.read_text().splitlines()]
    for row, outcome in ((right, 1.0), (wrong, 0.0)):
        info, steps = row["info"]["progress"], row["steps"]["progress"]
        assert info["status"] == "scored"
        assert [row["completion"][s:e] for s, e, _ in steps][0] == "2+3=5"
        q = info["q"]
        assert len(q) == 4 and q[-1] == outcome and all(x in (0.0, 0.5, 1.0) for x in q)  # shares of n=2
        np.testing.assert_allclose([v for _, _, v in steps], np.diff(q), atol=1e-15)
    # the wrong completion shares the prompt and the first step with the right one: only its second prefix
    assert right["info"]["progress"]["continuations"] == 6 and wrong["info"]["progress"]["continuations"] == 2
    assert empty["steps"]["progress"] == [] and empty["info"]["progress"]["status"] == "no_steps"
