"""Step splitting into character spans, cutting a span (the answer) out as a step of its own, and
mapping each step to the token that ends it."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grpo_plugins.steps import SPLIT_RULES, join_steps, split_off, split_steps, step_end_tokens


def texts(text, spans):
    return [text[s:e] for s, e in spans]


def test_blank_line_split_trims_whitespace_and_drops_empty_steps():
    text = "  a = 1\n\n\n b = 2 \n  \nc = 3\n"
    spans = split_steps(text, "blank_line")
    assert texts(text, spans) == ["a = 1", "b = 2", "c = 3"]
    assert spans[0] == (2, 7)


def test_newline_split_keeps_single_line_steps():
    assert texts("x\ny\n\nz", split_steps("x\ny\n\nz", "newline")) == ["x", "y", "z"]


def test_step_prefix_split_starts_each_step_at_its_marker_and_keeps_a_preamble():
    text = "Let me think. Step 1: 2+2=4. Step 2: 4*3=12.\nStep 3: answer 12"
    assert texts(text, split_steps(text, "step_prefix")) == [
        "Let me think.", "Step 1: 2+2=4.", "Step 2: 4*3=12.", "Step 3: answer 12"]


def test_tag_split_uses_the_tag_as_a_step_end():
    text = "Step 1: a ки\nStep 2: b ки\nleftover"
    assert texts(text, split_steps(text, "tag")) == ["Step 1: a", "Step 2: b", "leftover"]
    assert texts("a <s> b <s>", split_steps("a <s> b <s>", "tag", tag="<s>")) == ["a", "b"]


def test_unknown_rule_names_the_valid_ones():
    with pytest.raises(ValueError, match="blank_line, newline, step_prefix, tag"):
        split_steps("a", "paragraph")


def test_join_steps_spans_point_at_each_step():
    text, spans = join_steps(["a=1", " b=2 ", "c=3"], "\n\n")
    assert text == "a=1\n\n b=2 \n\nc=3"
    assert texts(text, spans) == ["a=1", "b=2", "c=3"]
    # joining and splitting with the same separator agree, so training and scoring read the same tokens
    assert split_steps(text, "blank_line") == spans


def test_step_end_token_is_the_last_token_starting_inside_the_step():
    # "ab cd\n\nef": tokens "ab", " cd", "\n\n", "ef", plus a special token with an empty offset
    offsets = [(0, 0), (0, 2), (2, 5), (5, 7), (7, 9)]
    spans = split_steps("ab cd\n\nef", "blank_line")
    assert spans == [(0, 5), (7, 9)]
    assert step_end_tokens(offsets, spans) == [2, 4]


def test_a_token_straddling_the_step_end_belongs_to_the_step_it_starts_in():
    # token 1 covers "cd\n" across the end of step one (which ends at char 4)
    offsets = [(0, 2), (2, 5), (5, 6), (6, 8)]
    assert step_end_tokens(offsets, [(0, 4), (6, 8)]) == [1, 3]


def test_a_step_with_no_token_left_after_truncation_maps_to_none():
    # the first step's tokens were cut off (left truncation); only the second step is visible
    offsets = [(10, 12), (12, 14)]
    assert step_end_tokens(offsets, [(0, 5), (10, 14)]) == [None, 1]


def test_split_off_makes_the_answer_a_step_of_its_own():
    text = "<think>7+5=12, 2+4+1=7</think><answer>72</answer>"
    spans = split_steps(text, "tag", tag=", ")
    cut = (text.index("<answer>"), len(text))
    out, index = split_off(text, spans, cut)
    assert texts(text, out) == ["<think>7+5=12", "2+4+1=7</think>", "<answer>72</answer>"] and index == 2
    # a step that goes on after the cut keeps both parts; one that is all cut disappears into it
    text = "so the answer is <answer>5</answer> done\nbye"
    out, index = split_off(text, split_steps(text, "newline"), (17, 35))
    assert texts(text, out) == ["so the answer is", "<answer>5</answer>", "done", "bye"] and index == 1
    out, index = split_off("a\n<answer>5</answer>", [(0, 1), (2, 19)], (2, 19))
    assert out == [(0, 1), (2, 19)] and index == 1


def test_split_off_refuses_an_empty_or_outside_cut():
    with pytest.raises(ValueError, match="not a non-empty span"):
        split_off("abc", [(0, 3)], (2, 2))
    with pytest.raises(ValueError, match="not a non-empty span"):
        split_off("abc", [(0, 3)], (1, 9))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab \n,", max_size=60), st.sampled_from(SPLIT_RULES), st.data())
def test_split_off_keeps_every_character_outside_the_cut_in_one_step(text, rule, data):
    """Properties: spans ordered and disjoint, the cut is one of them at the index returned, no other
    step touches it, and every non-space character outside it stays inside (a part of) the step it was in."""
    spans = split_steps(text, rule, tag=",", step_pattern="a")
    if not text:
        return
    cs = data.draw(st.integers(0, len(text) - 1))
    ce = data.draw(st.integers(cs + 1, len(text)))
    out, index = split_off(text, spans, (cs, ce))
    assert out[index] == (cs, ce)
    assert all(e1 <= s2 for (_, e1), (s2, _) in zip(out, out[1:])) and all(s < e for s, e in out)
    for i, c in enumerate(text):
        if c.isspace() or cs <= i < ce:
            continue
        before = [(s, e) for s, e in spans if s <= i < e]
        after = [(s, e) for k, (s, e) in enumerate(out) if s <= i < e and k != index]
        assert len(after) == len(before) <= 1  # a separator stays outside every step
        assert all(b[0] <= a[0] and a[1] <= b[1] for a, b in zip(after, before))
