"""The math_steps step reward: hand-worked traces (plain text, LaTeX, variables), property tests
(true equations hold, perturbed ones do not, spans lie in the text, any text is scored without an
exception), and the reward through the plugin manager and host like any configured reward."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grpo_math.steps_reward import CORRECT, INCORRECT, UNCHECKABLE, MathStepsReward
from grpo_plugins import RewardConfig, RewardHost, Sample, get_plugin_manager

TAG = MathStepsReward({"split": "tag", "tag": ", "})
LINES = MathStepsReward()


def statuses(reward, text):
    return reward.score_text(text).info["step_status"]


@pytest.mark.parametrize("text, expected", [
    # the tiny demo's format: one step per ", "
    ("<think>7+5=12, 2+4+1=7</think><answer>72</answer>", [CORRECT, CORRECT]),
    ("<think>7+5=12, 2+4=7</think><answer>72</answer>", [CORRECT, INCORRECT]),
    ("<think>7+5=13, 2+4+1=7</think><answer>73</answer>", [INCORRECT, CORRECT]),
    ("so the total is 12, then we stop", [UNCHECKABLE, UNCHECKABLE]),
    # chains: every adjacent pair is checked, one false link makes the step incorrect
    ("2+3 = 5 = 10/2, 2+3 = 5 = 11/2", [CORRECT, INCORRECT]),
    # LaTeX fractions, \times, \cdot, \div, powers
    (r"\frac{1}{2}+\frac{1}{3}=\frac{5}{6}, 3 \times 4 = 12, 2^{10} = 1024, 12 \div 4 = 3",
     [CORRECT, CORRECT, CORRECT, CORRECT]),
    (r"\frac{1}{2}+\frac{1}{3}=\frac{2}{5}, 3 \cdot 4 = 13", [INCORRECT, INCORRECT]),
    # GSM8K calculator annotations and thousands separators
    ("<<48/2=24>> clips, 1,000+5=1,005", [CORRECT, CORRECT]),
    # a decimal that rounds the exact value is accepted; a wrong one is not
    ("1/3 = 0.333, 1/3 = 0.34", [CORRECT, INCORRECT]),
    # relations that are not equalities are not checked
    ("3 <= 4, 5 != 6, a == b", [UNCHECKABLE, UNCHECKABLE, UNCHECKABLE]),
])
def test_hand_worked_steps(text, expected):
    assert statuses(TAG, text) == expected


def test_a_binding_is_checked_against_the_equation_it_solves():
    text = "We have 2x + 1 = 7\nso 2x = 6\nx = 3\nthen 2x + 1 = 7 and x^2 = 9"
    assert statuses(LINES, text) == [UNCHECKABLE, UNCHECKABLE, CORRECT, CORRECT]
    wrong = "We have 2x + 1 = 7\nso 2x = 8\nx = 4\nthen x^2 = 16"
    # x = 4 fails 2x + 1 = 7 (though it agrees with the slipped 2x = 8); later claims use x = 4
    assert statuses(LINES, wrong) == [UNCHECKABLE, UNCHECKABLE, INCORRECT, CORRECT]


def test_a_definition_is_not_checkable_but_later_claims_use_it():
    assert statuses(LINES, "let y = 5\n3y - 1 = 14\n3y - 1 = 15") == [UNCHECKABLE, CORRECT, INCORRECT]


def test_step_values_and_info():
    res = TAG.score_text("<think>7+5=12, 2+4=7, done</think>")
    (s0, e0, v0), (s1, e1, v1), (s2, e2, v2) = res.steps
    assert (v0, v1, v2) == (1.0, 0.0, None)
    assert res.info["claims"] == [["7+5", "12", CORRECT], ["2+4", "7", INCORRECT]]
    assert res.info["checked"] == 2
    custom = MathStepsReward({"split": "tag", "tag": ", ", "correct": 0.5, "incorrect": -1.0})
    assert [v for _, _, v in custom.score_text("1+1=2, 1+1=3").steps] == [0.5, -1.0]


def test_step_format_is_declared():
    fmt = TAG.step_format
    assert (fmt.split, fmt.tag) == ("tag", ", ")
    assert fmt.spans("1+1=2, 2+2=4") == [(s, e) for s, e, _ in TAG.score_text("1+1=2, 2+2=4").steps]


# --- properties ------------------------------------------------------------------------------

ints = st.integers(min_value=-10 ** 6, max_value=10 ** 6)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_scored_without_raising(text):
    for reward in (TAG, LINES):
        res = reward.score_text(text)
        assert len(res.steps) == len(res.info["step_status"])
        for (s, e, v), status in zip(res.steps, res.info["step_status"]):
            assert 0 <= s < e <= len(text)
            assert (status == UNCHECKABLE) == (v is None)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from("0123456789+-*/=()^., xy\\{}frac<>!"), max_size=80).map("".join))
def test_math_like_noise_never_raises(text):
    res = TAG.score_text(text)
    assert all(st_ in (CORRECT, INCORRECT, UNCHECKABLE) for st_ in res.info["step_status"])


@settings(max_examples=300, deadline=None)
@given(ints, ints, st.sampled_from("+-*"), st.integers(min_value=1, max_value=1000))
def test_true_results_hold_and_perturbed_ones_do_not(a, b, op, delta):
    value = {"+": a + b, "-": a - b, "*": a * b}[op]
    rhs_b = f"({b})" if b < 0 else str(b)
    claim = f"{a}{op}{rhs_b}"
    assert statuses(TAG, f"{claim}={value}") == [CORRECT]
    assert statuses(TAG, f"{claim}={value + delta}") == [INCORRECT]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 50), st.integers(1, 50), st.integers(1, 50), st.integers(1, 50))
def test_latex_fractions_are_exact(a, b, c, d):
    total = Fraction(a, b) + Fraction(c, d)
    good = rf"\frac{{{a}}}{{{b}}}+\frac{{{c}}}{{{d}}}=\frac{{{total.numerator}}}{{{total.denominator}}}"
    bad = rf"\frac{{{a}}}{{{b}}}+\frac{{{c}}}{{{d}}}=\frac{{{total.numerator + 1}}}{{{total.denominator}}}"
    assert statuses(TAG, good) == [CORRECT]
    assert statuses(TAG, bad) == [INCORRECT]


@settings(max_examples=100, deadline=None)
@given(st.integers(-50, 50), st.integers(1, 9), st.integers(-50, 50), st.integers(1, 20))
def test_solving_a_linear_equation(x, k, c, wrong):
    """k*x + c = r; the trace states x = x (correct) or x = x + wrong (incorrect)."""
    r = k * x + c
    cc = f"+ {c}" if c >= 0 else f"- {-c}"
    assert statuses(LINES, f"{k}x {cc} = {r}\nx = {x}")[-1] == CORRECT
    assert statuses(LINES, f"{k}x {cc} = {r}\nx = {x + wrong}")[-1] == INCORRECT


# --- as a plugin -----------------------------------------------------------------------------


def test_registered_by_the_math_plugin_and_scored_through_the_host():
    manager = get_plugin_manager()
    entry = manager.reward_entry("math_steps")
    assert entry.cls is MathStepsReward and entry.cls.granularity == "step"
    samples = [Sample("12+30=?", "<think>2+0=2, 1+3=4</think><answer>42</answer>"),
               Sample("12+30=?", "<think>2+0=3, 1+3=4</think><answer>43</answer>")]
    with RewardHost([RewardConfig(name="math_steps", options={"split": "tag", "tag": ", "})], manager=manager) as host:
        scores = host.score(samples)
    steps = scores.results["math_steps"]
    assert [v for _, _, v in steps[0].steps] == [1.0, 1.0]
    assert [v for _, _, v in steps[1].steps] == [0.0, 1.0]


def test_unknown_option_is_named():
    with pytest.raises(ValueError, match="math_steps.splitt: unknown option"):
        MathStepsReward({"splitt": "tag"})


# --- against the peer: math-verify decides the same claims --------------------------------------

exprs = st.recursive(
    st.integers(0, 99).map(str),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", r" \times "]), inner).map(lambda t: f"{t[0]}{t[1]}{t[2]}"),
        st.tuples(inner, inner).map(lambda t: rf"\frac{{{t[0]}}}{{{t[1]}}}"),
        inner.map(lambda e: f"({e})")),
    max_leaves=5)


@settings(max_examples=50, deadline=None)
@given(exprs, st.integers(-3, 3))
def test_agrees_with_math_verify(expr, offset):
    """Claim ``expr = value (+ offset)``: our verdict equals math-verify's wherever we decide."""
    from math_verify import parse, verify

    from grpo_math.numeric import exact
    from grpo_math.parse import parse_answer

    try:
        value = exact(parse_answer(expr)) + offset
    except Exception:  # noqa: BLE001 - division by zero and the like: nothing to compare
        return
    rhs = str(value.numerator) if value.denominator == 1 else rf"\frac{{{value.numerator}}}{{{value.denominator}}}"
    ours = statuses(TAG, f"{expr} = {rhs}")
    assert len(ours) == 1
    peer = verify(parse(f"${rhs}$"), parse(f"${expr}$"))
    assert ours[0] == (CORRECT if peer else INCORRECT), (expr, rhs, peer)


def test_a_degenerate_trace_is_read_in_bounded_work():
    from grpo_math.steps_reward import MAX_CLAIMS

    text = "1=" * 20000 + "1, " + "2+2=4, " * 5000
    res = TAG.score_text(text)
    assert len(res.info["claims"]) == MAX_CLAIMS
    assert all(c[2] == CORRECT for c in res.info["claims"])
