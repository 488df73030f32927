"""Built-in format plugin: regex, tag count, language consistency, DAPO overlong penalty."""

import pytest

from grpo_format.rewards import overlong_penalty
from grpo_plugins import OptionsError, Sample, get_plugin_manager


def score(name, texts, ids=None, **options):
    reward = get_plugin_manager().create_reward(name, options)
    samples = [Sample("p", t, completion_ids=None if ids is None else ids[i]) for i, t in enumerate(texts)]
    return [r.value for r in reward.score(samples)]


def test_format_default_is_r1_think_answer():
    good = "<think>\nlet me see\n</think>\n<answer>\n4\n</answer>"
    assert score("format", [good, "<answer>4</answer>", "<think>x</think><answer>4</answer> trailing",
                            "<think>x</think>"]) == [1.0, 0.0, 0.0, 0.0]


def test_format_search_mode_and_values():
    vals = score("format", ["blah <answer>3</answer> blah", "no"], pattern=r"<answer>\d+</answer>",
                 mode="search", correct=2.0, incorrect=-1.0)
    assert vals == [2.0, -1.0]


def test_format_conversational_completion():
    msgs = [{"role": "assistant", "content": "<think>a</think><answer>b</answer>"}]
    reward = get_plugin_manager().create_reward("format")
    assert reward.score([Sample([{"role": "user", "content": "q"}], msgs)])[0].value == 1.0


def test_format_bad_pattern_is_reported():
    with pytest.raises(OptionsError, match="format.pattern: .*not a valid regular expression"):
        score("format", ["x"], pattern="(unclosed")


def test_tag_count_partial_credit():
    vals = score("tag_count", ["<think>a</think><answer>1</answer>", "<think>a</think>", "<think><think></think>", ""])
    assert vals == [1.0, 0.5, 0.25, 0.0]


def test_language_share_against_reference():
    text = "<think>Answer 是 42 ok</think><answer>42</answer>"
    latin = sum(c.isalpha() and c.isascii() for c in "Answer 是 42 ok")
    letters = sum(c.isalpha() for c in "Answer 是 42 ok")
    assert score("language", [text]) == [pytest.approx(latin / letters)]
    assert score("language", [text], script="cjk") == [pytest.approx(1 / letters)]
    assert score("language", ["Привет мир"], script="cyrillic") == [1.0]
    assert score("language", [text], region="all") == [pytest.approx(
        sum(c.isalpha() and c.isascii() for c in text) / sum(c.isalpha() for c in text))]


@pytest.mark.parametrize("length,expected", [(0, 0.0), (768, 0.0), (769, -1 / 256), (896, -0.5), (1024, -1.0),
                                             (1025, -1.0), (5000, -1.0)])
def test_overlong_penalty_formula(length, expected):
    assert overlong_penalty(length, 1024, 256) == pytest.approx(expected, abs=1e-12)


def test_overlong_reward_tokens_and_chars():
    assert score("overlong", ["x", "y"], ids=[[0] * 10, [0] * 30], max_length=20, cache_length=10) == [0.0, -1.0]
    assert score("overlong", ["a" * 15], unit="chars", max_length=20, cache_length=10) == [-0.5]
    with pytest.raises(ValueError, match="no completion_ids"):
        score("overlong", ["x"])
    with pytest.raises(OptionsError, match="cache_length must not exceed max_length"):
        score("overlong", ["x"], max_length=5, cache_length=10)
