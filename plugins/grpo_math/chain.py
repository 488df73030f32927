"""The chain check of ``math_steps``: which numbers a claim may use as operands (the prompt's, its
digits, earlier results and carries, constants), the final-answer span, and the answer the steps derived.

A claim's operands are the unsigned number tokens of its left-hand side. Each must come from an
enabled source:

- ``prompt_numbers``: a number written in the prompt (``463`` of ``463+342=?``), any number of times;
- ``place_digits``: for the k-th chain of the completion (0-based), the k-th digit from the right of
  each whole prompt number (0 for a number with fewer digits): digit-by-digit work, where the units
  step uses the units digits, the tens step the tens digits. Each digit may be used once per claim;
- ``prompt_digits``: any digit of a whole prompt number, each occurrence once per claim (looser than
  ``place_digits``: ``3`` of ``463`` passes in any position);
- ``results``: the stated result (right-hand side value) of any earlier claim, right or wrong, so an
  error is charged to the step that made it, not to the steps that carried it on;
- ``carries``: for the k-th chain, when the previous chain was a digit step (all its operands single
  digits), that chain's result without its units digit (the ``1`` of ``7+5=12`` in
  ``2+4+1=7``; ``2`` after ``3+8+9=20``), once per claim; nothing after a result under 10, so a
  ``+1`` no carry called for is unsupported, and nothing after a step on whole numbers (a running
  sum's ``11+89=100`` gives no ``10``);
- ``result_digits``: any digit of any earlier whole result (looser than ``carries``).

Numbers in ``chain_constants`` (none by default) are always available, but a claim whose operands
all are constants is unsupported (``1+1=2`` proves nothing).
"""

from __future__ import annotations

import re
from collections import Counter
from fractions import Fraction
from typing import Iterable, Literal

from .extract import _box_before, extract_answer

ChainSource = Literal["prompt_numbers", "place_digits", "prompt_digits", "results", "carries", "result_digits"]
DEFAULT_SOURCES: tuple[str, ...] = ("prompt_numbers", "place_digits", "results", "carries")
AnswerFrom = Literal["last_result", "place_value", "any"]
MAX_PLACES = 40  # a prompt number longer than this gives no place digits beyond it
MAX_NUMBER_CHARS = 400  # longer digit runs are not operands anyone computes with (and int() refuses 4,300+)

_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|\d+(?:\.\d+)?")


def numbers_in(text: str) -> list[Fraction]:
    """The unsigned numbers written in ``text`` (``1,000`` and ``2.5`` kept whole), in order."""
    return [Fraction(m.group().replace(",", "")) for m in _NUMBER.finditer(text) if len(m.group()) <= MAX_NUMBER_CHARS]


def _digits(n: Fraction) -> list[int]:
    """Decimal digits of a non-negative whole number, units first; [] for anything else."""
    if n.denominator != 1 or n < 0:
        return []
    return [int(c) for c in reversed(str(n.numerator))]


class Operands:
    """What the claims of one completion may use as operands, growing as its claims are read."""

    def __init__(self, prompt: str, sources: Iterable[str], constants: Iterable[float]):
        self.sources = frozenset(sources)
        prompt_numbers = numbers_in(prompt)
        self.free: set[Fraction] = set(prompt_numbers) if "prompt_numbers" in self.sources else set()
        self.constants = {Fraction(str(c)) for c in constants}  # via str: 0.1 is 1/10, as the text writes it
        self.last: dict[int, Fraction] = {}  # chain index -> its latest stated result
        self.digit_steps: set[int] = set()  # chains whose operands are all single digits
        self.whole_digits = [_digits(n)[:MAX_PLACES] for n in prompt_numbers if n.denominator == 1]
        self.any_digit = Counter(d for ds in self.whole_digits for d in ds if "prompt_digits" in self.sources)

    def pool(self, place: int) -> Counter:
        """Numbers the claim of chain ``place`` may use once each (place digits, any prompt digit, the carry)."""
        pool = Counter(self.any_digit)
        if "place_digits" in self.sources:
            pool.update(ds[place] if place < len(ds) else 0 for ds in self.whole_digits)
        previous = self.last.get(place - 1)
        if ("carries" in self.sources and place - 1 in self.digit_steps and previous is not None
                and previous.denominator == 1 and previous >= 10):
            pool[Fraction(previous.numerator // 10)] += 1
        return pool

    def supports(self, operands: list[Fraction], place: int) -> bool:
        """True when every operand has a source and at least one comes from the prompt or the results."""
        pool = self.pool(place)
        if operands and all(v.denominator == 1 and 0 <= v <= 9 for v in operands):
            self.digit_steps.add(place)
        grounded = 0
        for v in operands:
            # free sources first, then a pooled digit, constants last: this order accepts whatever
            # any assignment accepts and counts as many grounded operands as possible
            if v in self.free:
                grounded += 1
            elif pool[v] > 0:
                pool[v] -= 1
                grounded += 1
            elif v not in self.constants:
                return False
        return grounded > 0 or not operands

    def add_result(self, value: Fraction, chain: int) -> None:
        """Make a stated result of chain ``chain`` (its digits, its carry) available to later claims."""
        self.last[chain] = value
        if "results" in self.sources:
            self.free.add(value)
        if "result_digits" in self.sources:
            self.free.update(Fraction(d) for d in _digits(value))


def answer_span(text: str) -> tuple[int, int, str] | None:
    """(start, end, content) of the final answer: the last ``<answer>`` tag, else the last box."""
    lower = text.lower()
    start = lower.rfind("<answer>")
    if start >= 0:
        close = lower.find("</answer>", start)
        end = close + len("</answer>") if close >= 0 else len(text.rstrip())
    else:
        box = _box_before(text, len(text))
        if box is None:
            return None
        _, start, end = box
    found = extract_answer(text[start:end], "marked")
    return start, end, found.text if found else ""


def place_value(results: list[Fraction]) -> Fraction | None:
    """The number digit-by-digit steps compose: the units digit of each result but the last, which is
    written whole at its place (``7+5=12, 2+4+1=7`` -> 72); None unless every result is whole and >= 0."""
    if not results or any(r.denominator != 1 or r < 0 for r in results):
        return None
    *lower, top = results
    return sum(int(r) % 10 * 10 ** k for k, r in enumerate(lower)) + int(top) * 10 ** len(lower)


def derived(results: list[Fraction], how: str) -> list[Fraction]:
    """The answers the chain results derive under ``answer_from`` (last_result | place_value | any)."""
    if not results:
        return []
    out = []
    if how in ("last_result", "any"):
        out.append(results[-1])
    if how in ("place_value", "any"):
        pv = place_value(results)
        if pv is not None and pv not in out:
            out.append(pv)
    return out
