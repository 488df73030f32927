"""Answer extraction, gold extraction and parsing of the math reward."""

from __future__ import annotations

from fractions import Fraction

import pytest

from grpo_math.extract import extract_answer, extract_choice, extract_gold, gold_choice, last_boxed
from grpo_math.normalize import clean
from grpo_math.parse import ParseError, parse_answer


@pytest.mark.parametrize("text, answer, source", [
    ("x \\boxed{\\frac{1}{\\sqrt{2}}} y", "\\frac{1}{\\sqrt{2}}", "boxed"),
    ("\\boxed{a} then \\fbox{b}", "b", "boxed"),
    ("\\boxed 5 apples", "5", "boxed"),
    ("<think>\\boxed{1}</think><answer>2</answer>", "2", "answer_tag"),
    ("<answer>so \\boxed{3}</answer>", "3", "answer_tag/boxed"),
    ("<answer>The answer is 4.</answer>", "4", "answer_tag/phrase"),
    ("<think>unfinished <answer>17", "17", "answer_tag"),
    ("blah. The final answer is $\\frac{1}{2}$. I hope it is correct.", "\\frac{1}{2}", "phrase"),
    ("Answer: 12 because of the above", "12", "phrase"),
    ("so 3+4 = 7\n#### 7", "7", "gsm8k"),
    ("**Step 1:** think\nthe total is **19**", "19", "bold"),
    ("we get $x = 2$ and then $y=5$", "y=5", "math"),
    ("we get \\(3\\)", "3", "math"),
    ("we get $$ 3 $$", "3", "math"),
])
def test_extraction_priorities(text, answer, source):
    found = extract_answer(text)
    assert found is not None and (found.text, found.source) == (answer, source)


def test_truncated_last_box_falls_back_to_the_previous_one():
    assert last_boxed("\\boxed{1} and \\boxed{\\frac{2}{3}") == "1"
    assert last_boxed("\\boxed{\\frac{2}{3}") is None


def test_extraction_modes_and_the_last_number():
    text = "I computed 3 things and then 41 more, total unknown"
    assert extract_answer(text, "marked") is None
    assert extract_answer(text, "latex") is None
    found = extract_answer(text)
    assert (found.text, found.source) == ("41", "last_number")
    assert extract_answer("we get $x = 2$", "marked") is None
    assert extract_answer("we get $x = 2$", "latex").text == "x = 2"
    with pytest.raises(ValueError, match="extraction mode"):
        extract_answer(text, "loose")


def test_extraction_rejects_non_text():
    with pytest.raises(TypeError, match="string"):
        extract_answer(None)


@pytest.mark.parametrize("gold, out", [
    (7, "7"), (2.5, "2.5"), ("  12 ", "12"), ("so \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
    ("Natalia sold 24.\n#### 72", "72"), ("x=3", "x=3"),
])
def test_gold_extraction(gold, out):
    assert extract_gold(gold) == out


@pytest.mark.parametrize("bad", [None, True, [1, 2], {"a": 1}])
def test_gold_of_a_wrong_type_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="gold answer must be"):
        extract_gold(bad)


def test_choice_letters():
    assert gold_choice("(C)") == "C" and gold_choice("\\text{(B)}") == "B" and gold_choice("Cat") is None
    assert extract_choice("the answer is (D).", None) == "D"
    assert extract_choice("whatever", "\\text{(E)}") == "E"
    assert extract_choice("options (A) and (B) look good; I pick (B)", None) == "B"
    assert extract_choice("no letter here", None) is None


def test_clean_spellings():
    assert clean("$\\left( \\dfrac{1}{2}, 3 \\right)$") == "( \\frac{1}{2}, 3 )"
    assert clean("30^{\\circ}") == "30"
    assert clean("x \\leq 3") == "x <= 3"
    assert clean("1\\,000") == "1000"


def test_parse_trees():
    assert parse_answer("1.5e-3") == ("num", Fraction(3, 2000), Fraction(1, 10000), 2)
    assert parse_answer("1,000") == ("num", Fraction(1000), None, 4)
    assert parse_answer("4\\sqrt(2)")[0] == "mul"
    assert parse_answer("(1,2]") == ("tuple", (("num", 1, None, 1), ("num", 2, None, 1)), "(", "]")
    assert parse_answer("2, -2")[0] == "list"
    assert parse_answer("5 \\text{ cm}^2") == ("num", 5, None, 1)
    assert parse_answer("\\text{Monday}") == ("text", "monday")
    assert parse_answer("e")[1] == "E" and parse_answer("2e3")[1] == 2000


def test_numpy_numbers_are_gold_answers():
    np = pytest.importorskip("numpy")
    assert extract_gold(np.int64(42)) == "42" and extract_gold(np.float64(0.5)) == "0.5"


@pytest.mark.parametrize("bad", ["", "4 2", "\\frac{1}", "(1,2", "\\unknowncmd{3}", "1 +", "{" * 500 + "1" + "}" * 500,
                                 "x" * 30000, "\\begin{cases} 1 \\end{cases}", "1e999999"])
def test_parse_errors_are_parse_errors(bad):
    with pytest.raises(ParseError):
        parse_answer(bad)


def test_random_token_soup_never_raises_and_stays_in_the_vocabulary():
    import random

    from grpo_math.reward import STATUSES, MathReward
    from grpo_plugins import Sample

    toks = ["1", "2", ".", "x", "e", "\\pi", "\\frac", "\\sqrt", "{", "}", "(", ")", "[", "]", "^", "_", "+", "-",
            "=", "<", ",", "\\%", "!", "\\infty", "\\cup", "\\pm", "\\text{cm}", " ", "\\left(", "\\right)", "|",
            "\\log", "\\binom", "\\begin{pmatrix}", "\\end{pmatrix}", "&", "\\\\", "1,000", "1e5", "or", "\u00b0"]
    rng = random.Random(7)
    soups = ["".join(rng.choice(toks) for _ in range(rng.randint(1, 20))) for _ in range(300)]
    r = MathReward({"timeout": 2.0, "workers": 1})
    try:
        results = r.score([Sample("q", f"\\boxed{{{s}}}", columns={"answer": "\\frac{1}{2}"}) for s in soups])
    finally:
        r.close()
    assert len(results) == len(soups)
    assert {res.info["status"] for res in results} <= set(STATUSES)
    assert sum(res.info["status"] == "unparseable" for res in results) > 100  # soup is mostly unreadable


def test_in_process_decisions_and_what_needs_a_worker():
    from grpo_math.equivalence import CheckOptions, check
    from grpo_math.numeric import NeedSympy

    o = CheckOptions()
    assert check("\\frac{3}{4}", "0.75", o, sympy_ok=False) == "correct"
    assert check("(x+1)^2", "x^2+x+1", o, sympy_ok=False) == "incorrect"  # differs at a sample point
    assert check("2\\sqrt{2}", "\\sqrt{9}", o, sympy_ok=False) == "incorrect"
    for gold, pred in (("(x+1)^2", "x^2+2x+1"), ("2\\sqrt{2}", "\\sqrt{8}"), ("2x+3y=6", "4x+6y=12")):
        with pytest.raises(NeedSympy):  # proving equality is the worker's job
            check(gold, pred, o, sympy_ok=False)
        assert check(gold, pred, o, sympy_ok=True) == "correct"
