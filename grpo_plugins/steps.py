"""Reasoning steps as character spans, and the token that ends each step (the one char -> token
mapping: the PRM reads and trains on it, the trainer puts process advantages on it).

A step is a ``(start_char, end_char)`` span of the completion with surrounding whitespace trimmed,
so the same text gives the same spans whichever rule cut it. The PRM reads its score at the last
token of a step; training puts the step's label on that same token.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal, Sequence

SplitRule = Literal["blank_line", "newline", "step_prefix", "tag"]
SPLIT_RULES: tuple[str, ...] = ("blank_line", "newline", "step_prefix", "tag")
DEFAULT_STEP_PATTERN = r"Step\s*\d+\s*[:.]"
MATH_SHEPHERD_TAG = "ки"

_SEPARATORS = {"blank_line": re.compile(r"\n[ \t]*\n"), "newline": re.compile(r"\n")}


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The span with leading/trailing whitespace removed, or None when nothing is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


def _cut(text: str, cuts: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spans between separator matches ``cuts`` (each a (start, end) removed from the text)."""
    spans, pos = [], 0
    for s, e in cuts:
        span = _trim(text, pos, s)
        if span:
            spans.append(span)
        pos = e
    span = _trim(text, pos, len(text))
    if span:
        spans.append(span)
    return spans


def split_steps(text: str, rule: SplitRule = "blank_line", tag: str = MATH_SHEPHERD_TAG,
                step_pattern: str = DEFAULT_STEP_PATTERN) -> list[tuple[int, int]]:
    """Character spans of the steps of ``text`` under a split rule (blank_line|newline|step_prefix|tag)."""
    if rule in _SEPARATORS:
        return _cut(text, [m.span() for m in _SEPARATORS[rule].finditer(text)])
    if rule == "tag":
        if not tag:
            raise ValueError("split rule 'tag' needs a non-empty tag")
        return _cut(text, [m.span() for m in re.finditer(re.escape(tag), text)])
    if rule == "step_prefix":
        # each "Step k:" starts a step; text before the first marker is a step of its own
        starts = [m.start() for m in re.finditer(step_pattern, text)]
        return _cut(text, [(s, s) for s in starts])
    raise ValueError(f"unknown split rule {rule!r}; valid rules: {', '.join(SPLIT_RULES)}")


def split_off(text: str, spans: Sequence[tuple[int, int]], cut: tuple[int, int]) -> tuple[list[tuple[int, int]], int]:
    """Step spans with ``cut`` (e.g. the final answer) made a step of its own; returns (spans, its index).

    A step overlapping ``cut`` keeps its parts before and after it (trimmed, dropped when empty), so no
    other step shares a character with ``cut``; the order of ``spans`` is kept."""
    cs, ce = cut
    if not 0 <= cs < ce <= len(text):
        raise ValueError(f"cut {cut} is not a non-empty span of a text of {len(text)} characters")
    out: list[tuple[int, int]] = []
    for s, e in spans:
        if e <= cs or s >= ce:
            out.append((s, e))
            continue
        for part in ((s, cs), (ce, e)):
            kept = _trim(text, *part) if part[0] < part[1] else None
            if kept:
                out.append(kept)
    index = sum(e <= cs for _, e in out)
    out.insert(index, (cs, ce))
    return out, index


def join_steps(steps: Sequence[str], separator: str) -> tuple[str, list[tuple[int, int]]]:
    """Join step texts with ``separator``; return the text and each step's trimmed span in it."""
    parts, spans, pos = [], [], 0
    for i, step in enumerate(steps):
        if i:
            parts.append(separator)
            pos += len(separator)
        span = _trim(step, 0, len(step))
        if span is None:
            raise ValueError(f"step {i} is empty")
        spans.append((pos + span[0], pos + span[1]))
        parts.append(step)
        pos += len(step)
    return "".join(parts), spans


def step_end_tokens(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[int | None]:
    """For each char span, the index of the last token that starts before its end and overlaps it.

    ``offsets`` are the tokenizer's (start, end) per token; special tokens have start == end and
    are skipped. A token that straddles a step end belongs to the step it starts in; None marks a
    step with no token (cut off by truncation).
    """
    starts = [(s, e, i) for i, (s, e) in enumerate(offsets) if e > s]
    out: list[int | None] = []
    j = 0
    for span_start, span_end in spans:
        # spans are ordered, so one forward scan finds every step end
        while j < len(starts) and starts[j][0] < span_end:
            j += 1
        last = starts[j - 1] if j else None
        out.append(last[2] if last is not None and last[1] > span_start else None)
    return out


def token_offsets(tokenizer, ids: Sequence[int], text: str) -> list[tuple[int, int]]:
    """Character span of each generated token inside the decoded completion ``text``.

    Uses the fast tokenizer's offsets when re-tokenising ``text`` gives back the same ids;
    otherwise decodes growing prefixes (exact for any tokenizer, quadratic in the length).
    Special tokens that ``text`` omits (EOS, padding) get zero-width spans at the end.
    """
    ids = list(ids)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    body = [i for i in ids if i not in special]
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        if list(enc["input_ids"]) == body:
            it = iter(enc["offset_mapping"])
            return [(len(text), len(text)) if i in special else tuple(next(it)) for i in ids]
    out, prev, kept = [], 0, []
    for i in ids:
        if i in special:
            out.append((prev, prev))
            continue
        kept.append(i)
        end = len(tokenizer.decode(kept, skip_special_tokens=True))
        out.append((prev, end))
        prev = end
    return out


def aggregate_steps(values: Sequence[float], how: str) -> float | None:
    """One value from a completion's step values: min | product | last | mean; None when there are none."""
    if not values:
        return None
    if how == "min":
        return min(values)
    if how == "product":
        return math.prod(values)
    if how == "last":
        return values[-1]
    if how == "mean":
        return sum(values) / len(values)
    raise ValueError(f"unknown step aggregate {how!r}; valid: min, product, last, mean")


@dataclass
class StepFormat:
    """How steps are cut from a completion (the PRM must be read the way it was trained)."""

    split: str = "blank_line"
    tag: str = MATH_SHEPHERD_TAG
    step_pattern: str = DEFAULT_STEP_PATTERN
    separator: str = "\n\n"  # joins TRL/PRM800K step lists; must be something ``split`` cuts at

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Step spans of a completion under this format."""
        return split_steps(text, self.split, self.tag, self.step_pattern)

    def override(self, split: str | None = None, tag: str | None = None,
                 step_pattern: str | None = None) -> "StepFormat":
        """A copy with the given (non-None) fields replaced: options over a model's own format."""
        return StepFormat(split=split or self.split, tag=tag or self.tag,
                          step_pattern=step_pattern or self.step_pattern, separator=self.separator)
