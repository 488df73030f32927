"""Find the final answer in a model completion, and the answer in a gold column value.

Priorities follow what models are trained to write: an <answer> tag, the last \\boxed{}, a
"final answer is" phrase, GSM8K's "####", markdown bold, the last math span, then (optional) the
last number. Every search is linear in the text or bounded to its tail, so garbage stays cheap.
"""

from __future__ import annotations

import numbers
import re
from typing import Any, NamedTuple

TAIL = 4000  # characters from the end searched for bold, math spans and numbers
MAX_ANSWER = 1000  # longer "answers" are derivations or garbage (and would bloat the caches)

_PHRASE = re.compile(r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*:?\s*([^\n]+)", re.IGNORECASE)
_GSM8K = re.compile(r"####\s*([^\n]+)")
_BOLD = re.compile(r"\*\*([^*\n]{1,200})\*\*")
_MATH = re.compile(r"\$\$(.{1,1000}?)\$\$|\\\[(.{1,1000}?)\\\]|\\\((.{1,1000}?)\\\)|\$([^$]{1,1000}?)\$", re.DOTALL)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")
_CHOICE_ANSWER = re.compile(r"(?:answer|option|choice)\s*(?:is|:)?\s*:?\s*\**\s*\(?([A-E])\)?(?![A-Za-z])",
                            re.IGNORECASE)
_CHOICE_PAREN = re.compile(r"\(([A-E])\)")
_CHOICE_ONLY = re.compile(r"\s*(?:\\text\{|\\mathrm\{|\\textbf\{)?\s*\(?([A-Ea-e])\)?\s*\}?(?:[\s.:)]|$)")


class Extracted(NamedTuple):
    """An answer found in a completion and where it was found (box, answer_tag, phrase, ...)."""

    text: str
    source: str


def extract_answer(text: str, fallback_number: bool = False) -> Extracted | None:
    """The final answer a completion states, or None when it states none."""
    if not isinstance(text, str):
        raise TypeError(f"completion text must be a string, got {type(text).__name__}")
    content = _last_answer_tag(text)
    if content is not None:
        inner = _search(content)
        if inner is not None:
            return Extracted(inner.text, "answer_tag/" + inner.source)
        if content:
            return Extracted(content[:MAX_ANSWER], "answer_tag")
    found = _search(text)
    if found is not None:
        return found
    if fallback_number:
        nums = _NUMBER.findall(text[-TAIL:])
        if nums:
            return Extracted(nums[-1].rstrip(","), "last_number")
    return None


def _last_answer_tag(text: str) -> str | None:
    """Content of the last <answer> tag (to </answer> or the end); rfind keeps this linear."""
    lower = text.lower()
    start = lower.rfind("<answer>")
    if start < 0:
        return None
    start += len("<answer>")
    end = lower.find("</answer>", start)
    return text[start:end if end >= 0 else len(text)].strip()


def _search(text: str) -> Extracted | None:
    box = last_boxed(text)
    if box is not None:
        return Extracted(box, "boxed")
    phrase = None
    for phrase in _PHRASE.finditer(text):
        pass
    if phrase is not None:
        value = _sentence(phrase.group(1))
        if value:
            return Extracted(value, "phrase")
    gsm = None
    for gsm in _GSM8K.finditer(text):
        pass
    if gsm is not None:
        return Extracted(gsm.group(1).strip()[:MAX_ANSWER], "gsm8k")
    tail = text[-TAIL:]
    bold = [b.strip() for b in _BOLD.findall(tail) if b.strip() and not b.strip().endswith(":")]
    if bold:
        return Extracted(bold[-1][:MAX_ANSWER], "bold")
    spans = _MATH.findall(tail)
    if spans:
        inner = next(g for g in spans[-1] if g)
        return Extracted(inner.strip()[:MAX_ANSWER], "math")
    return None


def _sentence(value: str) -> str:
    """The answer part of a 'final answer is ...' line: up to a sentence end, math spans kept whole."""
    value = value.strip()
    m = re.match(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", value)
    if m:
        return next(g for g in m.groups() if g).strip()
    value = re.split(r"\.\s|\.$|,\s+(?:so|because|since|which)\b", value)[0]
    return value.strip().strip("*").strip()[:MAX_ANSWER]


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} or \\fbox{...} (nested braces), or of '\\boxed 5'."""
    end = len(text)
    for _ in range(5):  # a truncated last box falls back to the one before it
        start = max(text.rfind("\\boxed", 0, end), text.rfind("\\fbox", 0, end))
        if start < 0:
            return None
        i = start + (6 if text.startswith("\\boxed", start) else 5)
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            content = _braced(text, i)
            if content is not None:
                return content.strip()[:MAX_ANSWER]
        elif i > start + 5 and i < len(text):
            m = re.match(r"[^\s$]+", text[i:])
            if m:
                return m.group(0)
        end = start
    return None


def _braced(text: str, i: int) -> str | None:
    depth = 0
    for j in range(i, len(text)):
        c = text[j]
        if c == "{" and text[j - 1] != "\\":
            depth += 1
        elif c == "}" and text[j - 1] != "\\":
            depth -= 1
            if depth == 0:
                return text[i + 1:j]
    return None


def extract_choice(text: str, candidate: str | None) -> str | None:
    """A multiple-choice letter A-E from the extracted answer, or from 'answer is (C)' in the text."""
    if candidate is not None:
        m = _CHOICE_ONLY.match(candidate)
        if m:
            return m.group(1).upper()
    found = None
    for found in _CHOICE_ANSWER.finditer(text[-TAIL:]):
        pass
    if found is None:
        for found in _CHOICE_PAREN.finditer(text[-TAIL:]):
            pass
    return found.group(1).upper() if found else None


def gold_choice(gold: str) -> str | None:
    """The letter when a gold answer is a multiple-choice letter ('C', '(C)', '\\text{(C)}')."""
    m = re.fullmatch(r"\s*(?:\\text\{)?\s*\(?([A-E])\)?\s*\}?\s*", gold)
    return m.group(1) if m else None


def extract_gold(value: Any) -> str:
    """The answer in a gold column value: a plain answer, or the last box / '####' of a solution."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"gold answer must be a number or a string, got {value!r}")
    if isinstance(value, numbers.Integral):  # numpy integers from a datasets column too
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    if not isinstance(value, str):
        raise ValueError(f"gold answer must be a number or a string, got {type(value).__name__}")
    box = last_boxed(value)
    if box is not None:
        return box
    if "####" in value:
        return value.rsplit("####", 1)[1].strip()
    return value.strip()
