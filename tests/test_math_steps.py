"""The math_steps step reward: hand-worked traces (plain text, LaTeX, variables), property tests
(true equations hold, perturbed ones do not, spans lie in the text, any text is scored without an
exception), the chain check and the answer step (the demo's worked solutions pass, invented operands
fail, running-sum chains), the unchecked control equal to the reward before those checks, and the
reward through the plugin manager and host like any configured reward."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from grpo_math.steps_reward import (ANSWER_DERIVED, ANSWER_NOT_DERIVED, CORRECT, INCORRECT, UNCHECKABLE,
                                    UNSUPPORTED, MathStepsReward)
from grpo_plugins import RewardConfig, RewardHost, Sample, get_plugin_manager
from grpo_plugins.grpo.tiny import addition_example

TAG = MathStepsReward({"split": "tag", "tag": ", "})
LINES = MathStepsReward()


def statuses(reward, text, prompt=None):
    return reward.score_text(text, prompt).info["step_status"]


@pytest.mark.parametrize("text, expected", [
    # the tiny demo's format: one step per ", "
    # the answer is a step of its own: 72 is what 12 and 7 compose to, right or wrong
    ("<think>7+5=12, 2+4+1=7</think><answer>72</answer>", [CORRECT, CORRECT, ANSWER_DERIVED]),
    ("<think>7+5=12, 2+4=7</think><answer>72</answer>", [CORRECT, INCORRECT, ANSWER_DERIVED]),
    ("<think>7+5=13, 2+4+1=7</think><answer>73</answer>", [INCORRECT, CORRECT, ANSWER_DERIVED]),
    ("<think>7+5=12, 2+4+1=7</think><answer>71</answer>", [CORRECT, CORRECT, ANSWER_NOT_DERIVED]),
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
    assert [v for _, _, v in steps[0].steps] == [1.0, 1.0, 1.0]
    assert [v for _, _, v in steps[1].steps] == [0.0, 1.0, 1.0]  # 43 is what the slipped steps compose


def test_the_host_passes_the_prompt_and_gold_so_invented_operands_fail():
    samples = [Sample("463+342=?\n", HACK, columns={"answer": "805"}),
               Sample("463+342=?\n", HACK.replace("7+3", "6+4"), columns={"answer": "805"})]
    with RewardHost([RewardConfig(name="math_steps", options={"split": "tag", "tag": ", "})]) as host:
        hack, honest = host.score(samples).results["math_steps"]
    assert [v for _, _, v in hack.steps] == [1.0, 0.0, 1.0, 1.0]
    assert hack.info["step_status"][1] == UNSUPPORTED and hack.info["operand_errors"] == 1
    assert [v for _, _, v in honest.steps] == [1.0, 1.0, 1.0, 1.0] and honest.info["operand_errors"] == 0
    assert hack.info["answer_gold"] is True and hack.info["answer_agrees"] is True


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


# --- the chain check and the answer step ------------------------------------------------------

HACK = "<think>3+2=5, 7+3=10, 4+3+1=8</think><answer>805</answer>"  # the diagnosis: tens should be 6+4


def digit_by_digit(numbers: list[int]) -> tuple[str, str, int]:
    """Prompt, worked completion (one step per digit place, the carry added as ``+1``...) and the sum."""
    width = max(len(str(n)) for n in numbers)
    parts, carry, results = [], 0, []
    for k in range(width):
        digits = [n // 10 ** k % 10 for n in numbers if n >= 10 ** k or k == 0]
        s = sum(digits) + carry
        parts.append("+".join(map(str, digits)) + (f"+{carry}" if carry else "") + f"={s}")
        results.append(s)
        carry = s // 10
    answer = sum(r % 10 * 10 ** k for k, r in enumerate(results[:-1])) + results[-1] * 10 ** (width - 1)
    return "+".join(map(str, numbers)) + "=?\n", f"<think>{', '.join(parts)}</think><answer>{answer}</answer>", answer


def running_sum(numbers: list[int]) -> tuple[str, list[str], int]:
    """Prompt and steps of a running-sum chain (``23+7=30, 30+45=75``) and its last result."""
    total, steps = numbers[0], []
    for n in numbers[1:]:
        steps.append(f"{total}+{n}={total + n}")
        total += n
    return "+".join(map(str, numbers)) + "=?\n", steps, total


def chain_text(steps: list[str], answer) -> str:
    return f"<think>{', '.join(steps)}</think><answer>{answer}</answer>"


def test_every_worked_solution_of_the_demo_passes():
    """All 8,100 two-digit sums of the tiny demo (grpo_plugins.grpo.tiny): every step and the answer."""
    for a in range(10, 100):
        for b in range(10, 100):
            ex = addition_example(a, b)
            res = TAG.score_text(ex["completion"], ex["prompt"], {"answer": ex["answer"]})
            assert res.info["step_status"] == [CORRECT, CORRECT, ANSWER_DERIVED], (a, b, res.info)
            assert res.info["operand_errors"] == 0 and res.info["answer_gold"] is True


def test_a_forgotten_carry_is_not_caught_and_the_outcome_says_so():
    """The demo's slip (``2+4=6`` where ``2+4+1=7`` was due) uses available operands: a known limit."""
    ex = addition_example(27, 45, slip=True)
    res = TAG.score_text(ex["completion"], ex["prompt"], {"answer": ex["answer"]})
    assert res.info["step_status"] == [CORRECT, CORRECT, ANSWER_DERIVED]
    assert res.info["answer_agrees"] is True and res.info["answer_gold"] is False


def test_the_diagnosis_hack_fails_with_its_status():
    res = TAG.score_text(HACK, "463+342=?\n")
    assert res.info["step_status"] == [CORRECT, UNSUPPORTED, CORRECT, ANSWER_DERIVED]
    assert [v for _, _, v in res.steps] == [1.0, 0.0, 1.0, 1.0]
    assert res.info["claims"][1] == ["7+3", "10", UNSUPPORTED] and res.info["operand_errors"] == 1
    # the tens digits are 6 and 4: a claim that uses a digit of another place fails too (3 of 463)
    assert statuses(TAG, HACK.replace("7+3", "3+4").replace("=10", "=7"), "463+342=?\n")[1] == UNSUPPORTED
    # any-digit sources (no positions) accept 3+4 but still not 7+3: 7 is nowhere in the prompt
    loose = MathStepsReward({"split": "tag", "tag": ", ", "chain_sources": ["prompt_numbers", "prompt_digits",
                                                                           "results", "carries"]})
    assert statuses(loose, HACK.replace("7+3", "3+4").replace("=10", "=7"), "463+342=?\n")[1] == CORRECT
    assert statuses(loose, HACK, "463+342=?\n")[1] == UNSUPPORTED


def test_a_digit_or_carry_is_used_once_per_claim_and_constants_alone_prove_nothing():
    prompt = "463+342=?\n"
    assert statuses(TAG, "3+2=5, 6+6=12", prompt) == [CORRECT, UNSUPPORTED]  # one 6 in the tens
    assert statuses(TAG, "3+2=5, 6+4+1=11", prompt) == [CORRECT, UNSUPPORTED]  # no carry from 5
    assert statuses(TAG, "9+2=11, 6+4+1=11", "469+342=?") == [CORRECT, CORRECT]  # the carry of 11
    assert statuses(TAG, "9+2=11, 6+4+1+1=12", "469+342=?") == [CORRECT, UNSUPPORTED]  # only one
    # a step on whole numbers carries nothing: the 10 of 100 is not available after 11+89
    assert statuses(TAG, "11+89=100, 100+10=110", "11+89+1=?") == [CORRECT, UNSUPPORTED]
    ones = MathStepsReward({"split": "tag", "tag": ", ", "chain_constants": [1]})
    assert statuses(ones, "3+2=5, 6+4+1=11", prompt) == [CORRECT, CORRECT]
    assert statuses(ones, "3+2=5, 1+1=2", prompt) == [CORRECT, UNSUPPORTED]  # constants alone


@pytest.mark.parametrize("numbers", [[463, 342], [999, 1], [5, 7], [1234, 8766, 50]])
def test_digit_by_digit_solutions_pass_with_carries_and_short_numbers(numbers):
    prompt, text, answer = digit_by_digit(numbers)
    res = TAG.score_text(text, prompt, {"answer": str(sum(numbers))})
    assert res.info["step_status"] == [CORRECT] * (len(res.info["step_status"]) - 1) + [ANSWER_DERIVED], text
    assert answer == sum(numbers) and res.info["answer_gold"] is True


def test_running_sum_chains():
    prompt, steps, total = running_sum([23, 7, 45, 12])
    assert statuses(TAG, chain_text(steps, total), prompt) == [CORRECT] * 3 + [ANSWER_DERIVED]
    # a wrong result is charged to its step; the next step may build on it (an earlier result)
    wrong = ["23+7=30", "30+45=76", "76+12=88"]
    assert statuses(TAG, chain_text(wrong, 88), prompt) == [CORRECT, INCORRECT, CORRECT, ANSWER_DERIVED]
    # an invented operand: 44 is neither in the prompt nor a result
    invented = ["23+7=30", "30+44=74", "74+12=86"]
    res = TAG.score_text(chain_text(invented, 86), prompt)
    assert res.info["step_status"] == [CORRECT, UNSUPPORTED, CORRECT, ANSWER_DERIVED]
    assert res.info["operand_errors"] == 1
    # an answer that is not the last result: its own step, 0.0, whatever the steps did
    res = TAG.score_text(chain_text(steps, 86), prompt, {"answer": str(total)})
    assert res.info["step_status"] == [CORRECT] * 3 + [ANSWER_NOT_DERIVED]
    assert res.steps[-1][2] == 0.0 and res.info["answer_agrees"] is False and res.info["answer_gold"] is False
    assert res.info["answer"] == "86" and res.info["answer_derived"][0] == str(total)


def test_answer_from_names_what_the_steps_derive():
    last = MathStepsReward({"split": "tag", "tag": ", ", "answer_from": "last_result"})
    place = MathStepsReward({"split": "tag", "tag": ", ", "answer_from": "place_value"})
    demo = "<think>7+5=12, 2+4+1=7</think><answer>72</answer>"
    assert statuses(last, demo, "27+45=?\n")[-1] == ANSWER_NOT_DERIVED
    assert statuses(place, demo, "27+45=?\n")[-1] == ANSWER_DERIVED
    prompt, steps, total = running_sum([23, 7, 45])
    assert statuses(last, chain_text(steps, total), prompt)[-1] == ANSWER_DERIVED
    assert statuses(place, chain_text(steps, total), prompt)[-1] == ANSWER_NOT_DERIVED
    # a boxed answer is the answer step when there is no tag; nothing derived: not checkable
    assert statuses(LINES, "2+3=5\nso \\boxed{5}", "2+3=?") == [CORRECT, UNCHECKABLE, ANSWER_DERIVED]
    assert statuses(LINES, "I know it\nso \\boxed{5}", "2+3=?") == [UNCHECKABLE] * 3


def test_the_answer_step_is_cut_out_of_the_last_reasoning_step():
    text = "<think>7+5=12, 2+4+1=7</think><answer>72</answer>"
    res = TAG.score_text(text, "27+45=?\n")
    assert [text[s:e] for s, e, _ in res.steps] == ["<think>7+5=12", "2+4+1=7</think>", "<answer>72</answer>"]
    merged = MathStepsReward({"split": "tag", "tag": ", ", "answer_step": False}).score_text(text, "27+45=?\n")
    assert [text[s:e] for s, e, _ in merged.steps] == ["<think>7+5=12", "2+4+1=7</think><answer>72</answer>"]
    assert merged.info["answer_agrees"] is True  # reported, not scored


def test_chain_off_scores_the_hack_but_still_counts_it():
    unchecked = MathStepsReward({"split": "tag", "tag": ", ", "chain": False})
    res = unchecked.score_text(HACK, "463+342=?\n")
    assert res.info["step_status"] == [CORRECT, CORRECT, CORRECT, ANSWER_DERIVED]
    assert res.info["operand_errors"] == 1  # what the checked reward would have flagged


def test_without_a_prompt_nothing_is_chain_checked():
    res = TAG.score_text(HACK)
    assert res.info["step_status"][1] == CORRECT and res.info["operand_errors"] is None
    assert statuses(TAG, HACK, "")[1] == UNSUPPORTED  # an empty prompt is a prompt with no numbers


def test_a_bad_chain_source_is_named():
    with pytest.raises(ValueError, match="math_steps.chain_sources.0"):
        MathStepsReward({"chain_sources": ["prompt"]})


CAPTURED = Path(__file__).parent / "data" / "math_steps_unchecked.json"


def test_the_unchecked_control_reproduces_the_reward_before_the_checks():
    """chain: false + answer_step: false give the steps and info of commit 846ce21 on 568 captured cases
    (hand-worked traces, the demo's and the three-digit task's slipped solutions, math-like noise; four
    split rules), with or without the prompt; info only gains keys."""
    cases = json.loads(CAPTURED.read_text())["cases"]
    assert len(cases) == 568
    for case in cases:
        reward = MathStepsReward({**case["options"], "chain": False, "answer_step": False})
        for prompt in (case["prompt"], None):
            res = reward.score_text(case["completion"], prompt)
            assert [list(s) for s in res.steps] == case["steps"], case
            assert {k: res.info[k] for k in case["info"]} == case["info"], case


# --- properties of the chain check ----------------------------------------------------------

prompt_numbers = st.lists(st.integers(1, 999), min_size=2, max_size=6)


@settings(max_examples=150, deadline=None)
@given(prompt_numbers)
def test_random_correct_chains_are_correct_at_every_step(numbers):
    prompt, steps, total = running_sum(numbers)
    res = TAG.score_text(chain_text(steps, total), prompt)
    assert res.info["step_status"] == [CORRECT] * len(steps) + [ANSWER_DERIVED]
    prompt, text, _ = digit_by_digit(numbers)
    place = MathStepsReward({"split": "tag", "tag": ", ", "answer_from": "place_value"})
    assert place.score_text(text, prompt).info["step_status"] == [CORRECT] * text.count("=") + [ANSWER_DERIVED]


@settings(max_examples=150, deadline=None)
@given(prompt_numbers, st.data())
def test_one_invented_operand_makes_exactly_that_step_unsupported(numbers, data):
    """Step j adds an invented number instead of the prompt's; the chain goes on from its (true) result."""
    j = data.draw(st.integers(0, len(numbers) - 2))
    invented = data.draw(st.integers(10, 10 ** 4))
    used = numbers[:j + 1] + [invented] + numbers[j + 2:]
    prompt, _, _ = running_sum(numbers)
    _, steps, total = running_sum(used)
    results = {sum(used[:i + 1]) for i in range(len(used))}
    assume(invented not in set(numbers) | results)
    res = TAG.score_text(chain_text(steps, total), prompt)
    expected = [CORRECT] * len(steps) + [ANSWER_DERIVED]
    expected[j] = UNSUPPORTED
    assert res.info["step_status"] == expected
    assert res.info["operand_errors"] == 1


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.text(max_size=100), st.one_of(st.none(), st.text(max_size=20), st.integers()))
def test_the_checked_reward_never_raises_on_any_text(text, prompt, gold):
    for reward in (TAG, LINES):
        res = reward.score_text(text, prompt, {"answer": gold} if gold is not None else None)
        assert "status" not in res.info, res.info  # no internal error either
        assert len(res.steps) == len(res.info["step_status"])
        ends = [(s, e) for s, e, _ in res.steps]
        assert ends == sorted(ends) and all(e1 <= s2 for (_, e1), (s2, _) in zip(ends, ends[1:]))
        for (s, e, v), status in zip(res.steps, res.info["step_status"]):
            assert 0 <= s < e <= len(text)
            assert (status == UNCHECKABLE) == (v is None)


def test_odd_prompts_and_constants():
    huge = "9" * 5000 + "+1=?"  # longer than int() reads from text
    assert statuses(TAG, "9+1=10", huge) == [UNSUPPORTED]
    tenth = MathStepsReward({"split": "tag", "tag": ", ", "chain_constants": [0.1]})
    assert statuses(tenth, "3*0.1=0.3", "3 apples") == [CORRECT]
    assert statuses(TAG, "3*0.1=0.3", "3 apples") == [UNSUPPORTED]
