"""The labelled corpus from public graders' test suites, and the math reward measured on it.

The corpus is benchmarks/data/math_grader_corpus.jsonl (built by benchmarks/import_grader_corpus.py
from Math-Verify's and lighteval's own tests, Math-Verify's issue threads and tests/test_math_cases.py).
These tests keep it well-formed and in sync, and fail when the reward slips below the accuracy
that docs/benchmarks/math.md reports on the imported part.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from grpo_math.reward import MathReward
from grpo_plugins import Sample
from test_math_cases import CASES, OPTIONS

CORPUS = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "math_grader_corpus.jsonl"
IMPORTED = {"math-verify", "lighteval", "math-verify-issues"}
SOURCE = re.compile(r"^(huggingface/(Math-Verify|lighteval)@[0-9a-f]{40}:tests/[\w/]+\.py::\w+(\[\d+\]|#\d+)"
                    r"|huggingface/Math-Verify#\d+ \(issue thread, repo at [0-9a-f]{7}\)"
                    r"|grpo-plugins@\w+:tests/test_math_cases\.py::CASES\[\d+\])$")


@pytest.fixture(scope="module")
def corpus():
    return [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_every_case_has_provenance_category_and_a_label(corpus):
    for c in corpus:
        assert SOURCE.match(c["source"]), c["source"]
        assert c["category"] and isinstance(c["expected"], bool)
        assert isinstance(c["completion"], str) and c["gold"] is not None
        assert isinstance(c["config"], dict) and isinstance(c["options"], dict)
    suites = Counter(c["suite"] for c in corpus)
    assert suites["math-verify"] >= 250 and suites["lighteval"] >= 200 and suites["math-verify-issues"] >= 10
    assert [c["id"] for c in corpus] == list(range(len(corpus)))
    # both labels in every suite: a corpus of only true cases cannot measure false positives
    for suite in suites:
        assert {c["expected"] for c in corpus if c["suite"] == suite} == {True, False}


def test_non_default_settings_name_the_option_that_reproduces_them(corpus):
    for c in corpus:
        if c["config"].get("match_types") == ["latex"]:
            assert c["options"].get("extraction") == "latex"
        if c["config"].get("allow_set_relation_comp"):
            assert c["options"] == {"extraction": "latex", "relation_intervals": "both"}
        if c["config"].get("precision", 6) < 3:
            assert c["options"]["rounding_digits"] == c["config"]["precision"]
    MathReward.Options(**{k: v for c in corpus for k, v in c["options"].items()})  # every option exists


def test_our_cases_in_the_corpus_match_the_test_file(corpus):
    ours = [c for c in corpus if c["suite"] == "grpo-plugins"]
    assert [(c["category"], c["gold"], c["completion"], c["expected"]) for c in ours] == [tuple(x) for x in CASES]
    assert {i: c["options"] for i, c in enumerate(ours) if c["options"]} == OPTIONS


def test_accuracy_on_the_imported_corpus(corpus):
    """The reward with default options plus the options a case names: >= 0.95, at most 2 false positives."""
    cases = [c for c in corpus if c["suite"] in IMPORTED]
    rewards: dict[str, MathReward] = {}
    wrong = []
    try:
        for c in cases:
            key = json.dumps(c["options"], sort_keys=True)
            reward = rewards.setdefault(key, MathReward({"timeout": 10.0, **c["options"]}))
            r = reward.score([Sample("q", c["completion"], columns={"answer": c["gold"]})])[0]
            assert r.info["status"] != "error", (c["id"], r.info)
            if (r.info["status"] == "correct") != c["expected"]:
                wrong.append((c["id"], c["expected"]))
    finally:
        for r in rewards.values():
            r.close()
    false_pos = sum(not y for _, y in wrong)
    assert 1 - len(wrong) / len(cases) >= 0.95, wrong
    assert false_pos <= 2, wrong
