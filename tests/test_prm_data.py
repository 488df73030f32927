"""PRM data formats: TRL, Math-Shepherd, PRM800K and labelled rollouts read into one shape."""

import json

import pytest

from grpo_plugins.io import InputError
from grpo_prm.data import detect_format, from_math_shepherd, from_prm800k, load_examples


def steps(ex):
    return [ex.completion[s:e] for s, e in ex.spans]


def test_math_shepherd_labels_line_up_with_the_tags():
    rec = {"input": "Janet has 3 eggs. How many? Step 1: 3 + 1 = 4 ки\nStep 2: The answer is 5 ки",
           "label": "Janet has 3 eggs. How many? Step 1: 3 + 1 = 4 +\nStep 2: The answer is 5 -"}
    ex = from_math_shepherd(rec)
    assert ex.prompt == "Janet has 3 eggs. How many?"
    assert steps(ex) == ["Step 1: 3 + 1 = 4", "Step 2: The answer is 5"]
    assert ex.labels == [1.0, 0.0]


def test_prm800k_follows_the_chosen_completion_and_stops_at_the_first_bad_step():
    rec = {"question": {"problem": "What is 2+3*4?"},
           "label": {"steps": [
               {"completions": [{"text": "3*4 = 12", "rating": 1}, {"text": "2+3 = 5", "rating": -1}],
                "chosen_completion": 0, "human_completion": None},
               {"completions": [{"text": "Hmm.", "rating": 0}], "chosen_completion": 0, "human_completion": None},
               {"completions": [{"text": "2+12 = 15", "rating": -1}], "chosen_completion": None,
                "human_completion": None},
               {"completions": [{"text": "never reached", "rating": 1}], "chosen_completion": 0}]}}
    ex = from_prm800k(rec, neutral=0.5)
    assert ex.prompt == "What is 2+3*4?"
    assert steps(ex) == ["3*4 = 12", "Hmm.", "2+12 = 15"]
    assert ex.labels == [1.0, 0.5, 0.0]


def test_load_examples_detects_each_format_and_names_the_bad_record(tmp_path):
    path = tmp_path / "mixed.jsonl"
    rows = [{"prompt": "p", "completions": ["a", "b"], "labels": [True, False]},
            {"prompt": "p", "completion": "x\n\ny", "steps": [[0, 1, 0.75], [3, 4, 0.0]], "cycle": 2}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    trl, rollout = load_examples(path, separator="\n\n")
    assert steps(trl) == ["a", "b"] and trl.labels == [1.0, 0.0] and trl.completion == "a\n\nb"
    assert steps(rollout) == ["x", "y"] and rollout.labels == [0.75, 0.0] and rollout.meta == {"cycle": 2}
    path.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"prompt": "p", "completions": ["a"], "labels": [1, 0]}))
    with pytest.raises(InputError, match=r"mixed.jsonl: record 2: .*1 steps but 2 labels"):
        load_examples(path)
    with pytest.raises(ValueError, match="unrecognised PRM record"):
        detect_format({"text": "hello"})
