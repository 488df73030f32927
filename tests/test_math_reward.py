"""The math reward as a plugin: registration, options, statuses, values, CLI and host use."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import pytest

from grpo_plugins import OptionsError, RewardHost, Sample, as_trl_reward_func, get_plugin_manager
from grpo_math.reward import STATUSES, MathReward


def score(completions, gold="5", **options):
    r = MathReward(options)
    try:
        return r.score([Sample("q", c, columns={"answer": gold}) for c in completions])
    finally:
        r.close()


def test_registered_through_the_entry_point_with_documented_options():
    pm = get_plugin_manager()
    entry = pm.reward_entry("math")
    assert entry.cls is MathReward and entry.plugin == "math"
    assert MathReward.granularity == "outcome"
    fields = MathReward.Options.model_fields
    for name in ("tolerance", "percent", "extraction", "rounding_digits", "relation_intervals", "bare_braces",
                 "decimal_comma", "choices", "correct", "incorrect", "no_answer", "timeout",
                 "answer_column"):
        assert fields[name].description, name


def test_unknown_and_bad_options_are_clear_errors():
    with pytest.raises(OptionsError, match="valid options: .*tolerance"):
        MathReward({"tolerence": 0.1})
    with pytest.raises(OptionsError, match="percent"):
        MathReward({"percent": "sometimes"})
    with pytest.raises(OptionsError, match="timeout"):
        MathReward({"timeout": 0})


def test_every_status_and_its_value():
    completions = ["\\boxed{5}", "\\boxed{6}", "no answer here", "\\boxed{\\frac{1}{}}", "\\boxed{10^{10^{10}}}"]
    results = score(completions, correct=2.0, incorrect=-1.0, no_answer=-0.5, timeout=1.0)
    assert [r.info["status"] for r in results] == list(STATUSES[:-1])  # "error" is a verifier bug, below
    assert [r.value for r in results] == [2.0, -1.0, -0.5, -1.0, -1.0]
    assert results[0].info == {"status": "correct", "extracted": "5", "source": "boxed", "gold": "5"}
    assert results[2].info["extracted"] is None


def test_percent_policy():
    comps = ["\\boxed{50\\%}"]
    assert score(comps, gold="0.5", percent="fraction")[0].info["status"] == "correct"
    assert score(comps, gold="50", percent="fraction")[0].info["status"] == "incorrect"
    assert score(comps, gold="50", percent="number")[0].info["status"] == "correct"
    assert score(comps, gold="0.5", percent="number")[0].info["status"] == "incorrect"


def test_tolerance_and_rounding_options():
    assert score(["\\boxed{3.0001}"], gold="3")[0].info["status"] == "incorrect"
    assert score(["\\boxed{3.0001}"], gold="3", tolerance=1e-3)[0].info["status"] == "correct"
    assert score(["\\boxed{1.732}"], gold="\\sqrt{3}")[0].info["status"] == "correct"
    assert score(["\\boxed{1.732}"], gold="\\sqrt{3}", rounding=False)[0].info["status"] == "incorrect"
    # exact values never get a tolerance
    assert score(["\\boxed{2^{-99}}"], gold="2^{-98}", tolerance=0.1)[0].info["status"] == "incorrect"


def test_unmarked_answers_count_by_default_and_marked_mode_refuses_them():
    text = "so we have 3 and then 5 remain"
    res = score([text])[0]
    assert res.info["status"] == "correct" and res.info["source"] == "last_number"
    assert score([text], extraction="marked")[0].info["status"] == "no_answer"
    assert score(["\\boxed{5}"], extraction="marked")[0].info["status"] == "correct"


def test_gold_column_can_be_renamed_and_a_missing_one_is_named():
    r = MathReward({"answer_column": "solution"})
    assert r.score([Sample("q", "\\boxed{4}", columns={"solution": "#### 4"})])[0].value == 1.0
    with pytest.raises(KeyError, match="no gold column 'solution'.*columns: answer"):
        r.score([Sample("q", "\\boxed{4}", columns={"answer": 4})])
    with pytest.raises(ValueError, match="^column 'solution'"):  # a batch of one: the caller knows which
        r.score([Sample("q", "\\boxed{4}", columns={"solution": None})])
    with pytest.raises(ValueError, match="^sample 1, column 'solution'"):
        r.score([Sample("q", "4", columns={"solution": 4}), Sample("q", "\\boxed{4}", columns={"solution": None})])


def test_trainer_layout_with_integer_answers():
    comps = ["<think>2+2</think><answer>4</answer>", "<think>2+2</think>\n<answer>\n5\n</answer>",
             "<think>2+2</think><answer>4.0</answer>", "<think>it is 4</think>", "<answer>four</answer>"]
    assert [r.info["status"] for r in score(comps, gold=4)] == \
        ["correct", "incorrect", "correct", "correct", "incorrect"]
    # an RL run that pays only marked answers: the number inside <think> is no answer
    assert [r.info["status"] for r in score(comps, gold=4, extraction="marked")] == \
        ["correct", "incorrect", "correct", "no_answer", "incorrect"]


def test_repeated_pairs_in_a_batch_agree_and_use_the_pool_once():
    r = MathReward({"workers": 1})
    try:
        samples = [Sample("q", "\\boxed{x^2+2x+1}", columns={"answer": "(x+1)^2"})] * 6
        assert [x.info["status"] for x in r.score(samples)] == ["correct"] * 6
        r.pool.close()  # a cached verdict needs no worker
        assert r.score(samples[:1])[0].info["status"] == "correct"
    finally:
        r.close()


def test_pickles_without_its_workers():
    r = MathReward({"tolerance": 0.01})
    r.score([Sample("q", "\\boxed{x}", columns={"answer": "x+0"})])
    clone = pickle.loads(pickle.dumps(r))
    try:
        assert clone.options.tolerance == 0.01 and clone._pool is None
        assert clone.score([Sample("q", "\\boxed{2x}", columns={"answer": "x+x"})])[0].value == 1.0
    finally:
        clone.close()
        r.close()


def test_through_the_host_and_as_a_trl_function():
    with RewardHost([{"name": "math", "options": {"correct": 1.0}}]) as host:
        scores = host.score([Sample("q", "\\boxed{\\frac12}", columns={"answer": "0.5"}),
                             Sample("q", "\\boxed{2}", columns={"answer": "0.5"})])
    assert scores.totals == [1.0, 0.0]
    assert scores.results["math"][0].info["status"] == "correct"
    fn = as_trl_reward_func("math")
    assert fn(prompts=["a", "b"], completions=["\\boxed{3}", "\\boxed{4}"], answer=[3, 3]) == [1.0, 0.0]


def test_cli_score(tmp_path):
    rows = [{"prompt": "p", "completion": "<think>t</think><answer>7</answer>", "answer": 7},
            {"prompt": "p", "completion": "\\boxed{\\frac{2}{4}}", "answer": "\\frac{1}{2}"},
            {"prompt": "p", "completion": "I do not know", "answer": "3"}]
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cli = [sys.executable, "-c", "from grpo_plugins.cli import main; main()"]
    subprocess.run(cli + ["score", "--reward", "math", "--input", str(src), "--output", str(dst)],
                   check=True, capture_output=True, text=True)
    out = [json.loads(line) for line in dst.read_text().splitlines()]
    assert [o["rewards"]["math"] for o in out] == [1.0, 1.0, 0.0]
    assert [o["info"]["math"]["status"] for o in out] == ["correct", "correct", "no_answer"]
