"""The ``math_steps`` reward: a verifiable step reward. It finds the intermediate claims of a
reasoning trace (``7+5=12``, ``\\frac{1}{2}+\\frac{1}{3}=\\frac{5}{6}``, ``x = 3`` after ``2x+1=7``),
checks each one exactly, and scores every step correct, incorrect or not checkable.

A step is a span cut by the reward's ``step_format`` (the same rules as the PRM: newline,
blank_line, tag, step_prefix), so the cycle can label steps for the PRM with it. Within a step,
claims are maximal runs of mathematical text holding ``=``; each adjacent pair of sides of a chain
``a = b = c`` is one check. A pair is decided by exact rational arithmetic first (grpo_math's
parser and exact evaluator); a decimal side falls back to grpo_math's tolerant check; anything
that needs symbolic algebra is not checkable. Variables: ``x = 3`` binds x; a binding is checked
by substituting it into the earlier equations that only lack x, and later claims that use x are
checked with it substituted. No learned model, no worker process; it never raises on any text.

A step is scored in its context: the reward sees the sample's prompt, its gold columns and every
earlier step of the completion. Two checks use it (both on by default; ``chain: false`` plus
``answer_step: false`` is the reward as it was before them, the unchecked control):

- the chain check (``chain``): a true arithmetic claim whose operands are not available (numbers of
  the prompt, their digits, earlier results, carries: ``chain_sources``, see
  ``grpo_math.chain``) is ``unsupported_operand`` and scores ``incorrect``; ``463+342=?`` answered
  with ``3+2=5, 7+3=10`` fails at ``7+3``. Claims with variables are not chain-checked;
- the answer step (``answer_step``): the final answer span (``<answer>...</answer>``, else the last
  ``\\boxed{}``) is a step of its own, cut out of the reasoning step it was written in, valued
  ``correct`` (status ``answer_derived``) when it equals what the steps derived (``answer_from``),
  else ``incorrect`` (``answer_not_derived``). Whether it equals the gold answer is the ``math`` reward's job;
  ``info.answer_gold`` only reports it.

Both facts are reported in ``info`` even when the option is off (``operand_errors``,
``answer_agrees``), so an experiment can measure the hack on an arm that does not check it.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import NamedTuple

from pydantic import Field

from grpo_plugins import Reward, RewardOptions, RewardResult, Sample
from grpo_plugins.steps import DEFAULT_STEP_PATTERN, StepFormat, SplitRule, split_off

from .chain import DEFAULT_SOURCES, AnswerFrom, ChainSource, Operands, answer_span, derived, numbers_in
from .equivalence import CheckOptions, check
from .extract import extract_gold
from .numeric import NeedSympy, exact
from .parse import ParseError, parse_answer

CORRECT, INCORRECT, UNCHECKABLE = "correct", "incorrect", "uncheckable"
UNSUPPORTED = "unsupported_operand"  # a true claim whose operands come from nowhere (value: incorrect)
ANSWER_DERIVED, ANSWER_NOT_DERIVED = "answer_derived", "answer_not_derived"
MAX_CLAIMS = 64  # per completion: a degenerate trace of thousands of "=" costs bounded time
MAX_SIDE_CHARS = 200
# plain-text words that are part of an expression, not prose
MATH_WORDS = {"sqrt", "sin", "cos", "tan", "ln", "log", "exp", "pi"}
# LaTeX commands that may appear inside a checkable expression; any other command ends the claim
MATH_CMDS = {"frac", "dfrac", "tfrac", "times", "cdot", "div", "sqrt", "left", "right", "pi", "sin", "cos",
             "tan", "ln", "log", "exp", "le", "ge"}
_TOKEN = re.compile(
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|\d+(?:\.\d+)?)"
    r"|(?P<cmd>\\[A-Za-z]+)"
    r"|(?P<word>[A-Za-z]{2,})"
    r"|(?P<letter>[A-Za-z])"
    r"|(?P<eq>=)"
    r"|(?P<op>[-+*/^()\[\]{}!%×÷·−\\,])"  # the comma of "\frac{1}{2}" or "\,"-spacing stays inside
    r"|(?P<space>[ \t]+)"
    r"|(?P<other>[\s\S])")


class StepOptions(RewardOptions):
    split: SplitRule = Field("newline", description="how steps are cut: newline | blank_line | tag | step_prefix")
    tag: str = Field(", ", min_length=1, description="separator for split: tag")
    step_pattern: str = Field(DEFAULT_STEP_PATTERN, description="regex that starts a step for split: step_prefix")
    correct: float = Field(1.0, description="value of a step whose checkable claims all hold")
    incorrect: float = Field(0.0, description="value of a step with at least one false claim")
    tolerance: float = Field(1e-6, ge=0, le=0.1, description="relative tolerance when a side is written as a decimal")
    rounding: bool = Field(True, description="accept a decimal that is the exact value rounded to its digits")
    chain: bool = Field(True, description="a true arithmetic claim whose operands are not in chain_sources is "
                                          "unsupported_operand (scored incorrect); needs the sample's prompt")
    chain_sources: list[ChainSource] = Field(
        list(DEFAULT_SOURCES), description="where operands may come from: prompt_numbers, place_digits (the k-th "
                                           "digit of prompt numbers in the k-th claim), prompt_digits (any digit), "
                                           "results (of earlier claims), carries (after a digit step, its "
                                           "result // 10), result_digits (any digit of an earlier result)")
    chain_constants: list[float] = Field([], description="numbers always available as operands (e.g. [2] for "
                                                         "'half'); a claim of constants alone is unsupported")
    answer_step: bool = Field(True, description="the final answer (<answer> tag, else the last box) is a step of "
                                                "its own, correct when it equals what the steps derived")
    answer_from: AnswerFrom = Field(
        "any", description="what the steps derive: last_result (the last claim's result: a running chain), "
                           "place_value (each claim a digit place: 7+5=12, 2+4+1=7 -> 72), any (either)")
    answer_column: str = Field("answer", min_length=1, description="gold column, only reported (info.answer_gold)")


class Claim(NamedTuple):
    """One checked pair ``lhs = rhs`` at chars [start, end) of the completion, with its status.

    ``chain`` is the index of the ``a = b = ...`` run it belongs to, ``supported`` whether its
    operands are available (None: not chain-checked), ``value`` the value of its right-hand side."""

    start: int
    end: int
    lhs: str
    rhs: str
    status: str
    chain: int = 0
    supported: bool | None = None
    value: Fraction | None = None


class _Side(NamedTuple):
    text: str
    letters: frozenset[str]


class MathStepsReward(Reward):
    """Dense, exact step credit: every arithmetic / algebraic claim of a step checked by grpo_math."""

    name = "math_steps"
    granularity = "step"
    Options = StepOptions
    description = ("each reasoning step's equations checked exactly, operands traced to the prompt and earlier "
                   "results; the final answer a step of its own, checked against what the steps derived")

    def __init__(self, options=None):
        super().__init__(options)
        o = self.options
        self.check_options = CheckOptions(o.tolerance, "either", o.rounding)

    @property
    def step_format(self) -> StepFormat:
        """The split rule this reward scores steps with (the cycle labels PRM data with the same)."""
        o = self.options
        return StepFormat(split=o.split, tag=o.tag, step_pattern=o.step_pattern)

    def score(self, samples: list[Sample]) -> list[RewardResult]:
        """One RewardResult per sample: steps [(start, end, value)], NaN for a step with nothing checkable.

        A step sees its context: the sample's prompt, its gold columns and every earlier step."""
        return [self.score_text(s.text, _prompt(s), s.columns) for s in samples]

    def score_text(self, text: str, prompt: str | None = None, columns: dict | None = None) -> RewardResult:
        """Score one completion; never raises (a failure inside marks the completion not checkable).

        Without a prompt (None) there is nothing to check operands against: no chain check."""
        o = self.options
        try:
            spans = self.step_format.spans(text)
            operands = Operands(prompt, o.chain_sources, o.chain_constants) if prompt is not None else None
            claims = self.claims(text, operands)
            answer = answer_span(text)
            answer_index = None
            if answer is not None and o.answer_step:
                spans, answer_index = split_off(text, spans, answer[:2])
            verdict = self._answer(answer, claims, columns or {})
        except Exception as exc:  # noqa: BLE001 - a verifier must not raise on any text
            return RewardResult(steps=[], info={"status": "error", "detail": f"{type(exc).__name__}: {exc}"[:300]})
        value_of = {CORRECT: o.correct, ANSWER_DERIVED: o.correct, UNCHECKABLE: None}
        steps, statuses, operand_errors = [], [], 0
        for i, (s, e) in enumerate(spans):
            if i == answer_index:
                status = verdict["status"]
            else:
                inside = [c for c in claims if s <= c.start and c.end <= e]
                status = _step_status(inside, o.chain)
                operand_errors += _step_status(inside, True) == UNSUPPORTED
            # a value of None means not applicable: no advantage, no label
            steps.append((s, e, value_of.get(status, o.incorrect)))
            statuses.append(status)
        info = {"step_status": statuses,
                "claims": [[c.lhs, c.rhs, _claim_status(c, o.chain)] for c in claims],
                "checked": sum(st != UNCHECKABLE for st in statuses),
                "operand_errors": operand_errors if operands is not None else None,
                "answer": answer[2] if answer is not None else None,
                "answer_derived": verdict["derived"], "answer_agrees": verdict["agrees"],
                "answer_gold": verdict["gold"]}
        return RewardResult(steps=steps, info=info)

    def _answer(self, answer: tuple[int, int, str] | None, claims: list[Claim], columns: dict) -> dict:
        """Status of the answer step, the values the steps derived, and both facts about the answer."""
        out = {"status": UNCHECKABLE, "derived": [], "agrees": None, "gold": None}
        if answer is None:
            return out
        start, _, content = answer
        last_of_chain: dict[int, Fraction | None] = {}
        for c in claims:
            if c.end <= start:
                last_of_chain[c.chain] = c.value
        values = derived([v for v in last_of_chain.values() if v is not None], self.options.answer_from)
        out["derived"] = [_fraction_text(v) for v in values]
        stated = content.rsplit("=", 1)[-1].strip()  # "<answer>x = 72</answer>" states 72
        if values:
            out["agrees"] = bool(stated) and any(self._equal(stated, _fraction_text(v)) == CORRECT for v in values)
            out["status"] = ANSWER_DERIVED if out["agrees"] else ANSWER_NOT_DERIVED
        gold = columns.get(self.options.answer_column)
        if gold is not None and content:
            try:
                out["gold"] = check(extract_gold(gold), content, self.check_options, sympy_ok=False) == "correct"
            except (NeedSympy, ArithmeticError, ValueError, TypeError, RecursionError, IndexError, KeyError):
                out["gold"] = None  # not decidable here; the math reward decides
        return out

    # --- claims ------------------------------------------------------------------------------

    def claims(self, text: str, operands: Operands | None = None) -> list[Claim]:
        """Every ``lhs = rhs`` pair of ``text`` in order, each with its status (variables tracked).

        With ``operands``, each arithmetic pair (no letters) is marked supported or not, and each
        stated result is made available to the pairs after it."""
        env: dict[str, Fraction] = {}
        open_equations: list[tuple[_Side, _Side]] = []  # equations with unknowns, for checking bindings
        out: list[Claim] = []
        for index, (start, end, sides) in enumerate(_chains(text)):
            for (a, a_span), (b, b_span) in zip(sides, sides[1:]):
                if len(out) >= MAX_CLAIMS:
                    return out
                status = self._pair(a, b, env, open_equations)
                supported = None
                if operands is not None and not (a.letters | b.letters):
                    supported = operands.supports(numbers_in(a.text), index)
                value = self._value(_substitute(b, env))
                if operands is not None and value is not None:
                    operands.add_result(value, index)
                out.append(Claim(a_span[0], b_span[1], a.text, b.text, status, index, supported, value))
        return out

    def _pair(self, a: _Side, b: _Side, env: dict[str, Fraction], open_equations: list) -> str:
        unknown = (a.letters | b.letters) - env.keys()
        if not unknown:
            return self._equal(_substitute(a, env), _substitute(b, env))
        binding = _binding(a, b) if len(unknown) == 1 else None
        if binding is not None and binding[0] in unknown:
            var, value_side = binding
            value = self._value(_substitute(value_side, env))
            if value is None:
                return UNCHECKABLE
            env2 = {**env, var: value}
            verdicts = [self._equal(_substitute(l, env2), _substitute(r, env2)) for l, r in open_equations
                        if var in (l.letters | r.letters) and not ((l.letters | r.letters) - env2.keys())]
            env[var] = value
            if INCORRECT in verdicts:
                return INCORRECT
            return CORRECT if CORRECT in verdicts else UNCHECKABLE
        open_equations.append((a, b))
        return UNCHECKABLE

    def _value(self, text: str) -> Fraction | None:
        try:
            return exact(parse_answer(text))
        except (ParseError, NeedSympy, ArithmeticError, ValueError, TypeError, RecursionError, IndexError, KeyError):
            return None

    def _equal(self, a: str, b: str) -> str:
        """Exact rationals first; a decimal side goes to the tolerant check; symbolic work is not done."""
        va, vb = self._value(a), self._value(b)
        if va is not None and vb is not None:
            if va == vb:
                return CORRECT
            if "." not in a and "." not in b:
                return INCORRECT
        try:
            verdict = check(b, a, self.check_options, sympy_ok=False)
        except NeedSympy:
            return UNCHECKABLE
        except (ArithmeticError, ValueError, TypeError, RecursionError, IndexError, KeyError):
            return UNCHECKABLE
        return {"correct": CORRECT, "incorrect": INCORRECT}.get(verdict, UNCHECKABLE)


def _prompt(sample: Sample) -> str | None:
    """The sample's prompt as text; None when it has none (or none that reads as text)."""
    if sample.prompt is None:
        return None
    try:
        return sample.prompt_text
    except TypeError:
        return None


def _claim_status(claim: Claim, chain: bool) -> str:
    """A claim's status with the chain check applied (a true claim with unavailable operands fails it)."""
    if chain and claim.status == CORRECT and claim.supported is False:
        return UNSUPPORTED
    return claim.status


def _step_status(claims: list[Claim], chain: bool) -> str:
    """A reasoning step's status from its claims: one false claim decides, then one unsupported one."""
    inside = {_claim_status(c, chain) for c in claims}
    for status in (INCORRECT, UNSUPPORTED, CORRECT):
        if status in inside:
            return status
    return UNCHECKABLE


def _fraction_text(v: Fraction) -> str:
    """An exact value as text the parser reads back (``72``, ``5/6``)."""
    return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"


def _chains(text: str):
    """(start, end, [(side, (s, e)), ...]) for every run of mathematical tokens holding '='."""
    run: list[tuple[str, str, int]] = []  # (kind, text, start)

    def flush():
        if any(k == "eq" for k, _, _ in run):
            chain = _split_chain(run)
            if chain:
                yield run[0][2], run[-1][2] + len(run[-1][1]), chain
        run.clear()

    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        tok = m.group()
        if kind == "cmd" and tok[1:] not in MATH_CMDS:
            kind = "other"
        if kind == "word" and tok.lower() not in MATH_WORDS:
            kind = "other"
        if kind == "op" and tok == "," and not _latex_comma(text, m.start()):
            kind = "other"  # "7+5=12, 2+4=6": a comma between claims ends the claim
        if kind == "eq" and ((m.start() and text[m.start() - 1] in "<>!=:") or text[m.end():m.end() + 1] in ("=", ">")):
            kind = "other"  # <=, >=, !=, ==, :=, => are not equalities to check
        if kind == "other":
            yield from flush()
            continue
        run.append((kind, tok, m.start()))
    yield from flush()


def _latex_comma(text: str, i: int) -> bool:
    """A comma that is LaTeX thin space (``\\,``): part of the expression."""
    return i > 0 and text[i - 1] == "\\"


def _split_chain(run) -> list[tuple[_Side, tuple[int, int]]] | None:
    """Split a token run at '=' into trimmed sides (one pass); None unless two adjacent sides remain.

    A side that is empty or has no operand breaks the chain; the longest stretch of consecutive
    good sides is kept (``= 5`` at the start of a run loses its empty side)."""
    best: list = []
    cur: list = []
    side: list = []
    for tok in run + [("eq", "=", -1)]:
        if tok[0] != "eq":
            side.append(tok)
            continue
        lo, hi = 0, len(side)
        while lo < hi and side[lo][0] == "space":
            lo += 1
        while hi > lo and side[hi - 1][0] == "space":
            hi -= 1
        body, side = side[lo:hi], []
        text = "".join(t[1] for t in body)
        if not any(k in ("num", "letter", "cmd", "word") for k, _, _ in body) or len(text) > MAX_SIDE_CHARS:
            best, cur = (cur if len(cur) > len(best) else best), []
            continue
        letters = frozenset(t[1] for t in body if t[0] == "letter")
        cur.append((_Side(text, letters), (body[0][2], body[-1][2] + len(body[-1][1]))))
    best = cur if len(cur) > len(best) else best
    return best if len(best) >= 2 else None


def _binding(a: _Side, b: _Side) -> tuple[str, _Side] | None:
    """(variable, value side) when one side is a lone variable and the other has no unknown letter."""
    if a.text.strip() in a.letters and len(a.letters) == 1 and not b.letters:
        return a.text.strip(), b
    if b.text.strip() in b.letters and len(b.letters) == 1 and not a.letters:
        return b.text.strip(), a
    return None


def _substitute(side: _Side, env: dict[str, Fraction]) -> str:
    """The side's text with each bound single-letter variable replaced by its value in parentheses."""
    if not side.letters:
        return side.text
    out = []
    for m in _TOKEN.finditer(side.text):
        tok = m.group()
        if m.lastgroup == "letter" and tok in env:
            v = env[tok]
            out.append(f"({v.numerator})" if v.denominator == 1 else f"({v.numerator}/{v.denominator})")
        else:
            out.append(tok)
    return "".join(out)
