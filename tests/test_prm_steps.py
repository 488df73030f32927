"""Step splitting into character spans, and mapping each step to the token that ends it."""

import pytest

from grpo_plugins.steps import join_steps, split_steps, step_end_tokens


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
