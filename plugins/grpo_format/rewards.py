"""Format-shaped rewards: they look at the completion's shape, never at its correctness."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator

from grpo_plugins import Reward, RewardOptions, RewardResult, Sample

R1_PATTERN = r"^\s*<think>.*?</think>\s*<answer>.*?</answer>\s*$"


class RegexFormatOptions(RewardOptions):
    pattern: str = Field(R1_PATTERN, description="regular expression the completion must match")
    mode: Literal["fullmatch", "search"] = Field("fullmatch", description="whole completion, or anywhere in it")
    dotall: bool = Field(True, description="'.' also matches newlines")
    ignore_case: bool = Field(False, description="case-insensitive matching")
    correct: float = Field(1.0, description="value when the completion matches")
    incorrect: float = Field(0.0, description="value when it does not")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return v


class RegexFormatReward(Reward):
    """1 when the completion matches a regex (DeepSeek-R1 <think>/<answer> layout by default)."""

    name = "format"
    granularity = "outcome"
    Options = RegexFormatOptions
    description = "regex format check (default: <think>...</think><answer>...</answer>)"

    def __init__(self, options=None):
        super().__init__(options)
        o = self.options
        flags = (re.DOTALL if o.dotall else 0) | (re.IGNORECASE if o.ignore_case else 0)
        regex = re.compile(o.pattern, flags)
        self._match = regex.fullmatch if o.mode == "fullmatch" else regex.search

    def score(self, samples: list[Sample]) -> list[RewardResult]:
        o = self.options
        out = []
        for s in samples:
            ok = self._match(s.text) is not None
            out.append(RewardResult(o.correct if ok else o.incorrect, info={"matched": ok}))
        return out


class TagCountOptions(RewardOptions):
    tags: list[str] = Field(["<think>", "</think>", "<answer>", "</answer>"],
                            description="tags that should each appear exactly once")


class TagCountReward(Reward):
    """Partial credit: 1/len(tags) for each tag that appears exactly once (open-r1's tag count)."""

    name = "tag_count"
    Options = TagCountOptions
    description = "partial format credit: share of tags that appear exactly once"

    def score(self, samples: list[Sample]) -> list[RewardResult]:
        tags = self.options.tags
        out = []
        for s in samples:
            text = s.text
            counts = {t: text.count(t) for t in tags}
            good = sum(1 for c in counts.values() if c == 1)
            out.append(RewardResult(good / len(tags) if tags else 0.0, info={"counts": counts}))
        return out


# first word(s) of the Unicode character name that identify a script
SCRIPTS: dict[str, tuple[str, ...]] = {
    "latin": ("LATIN",),
    "cjk": ("CJK", "HIRAGANA", "KATAKANA", "IDEOGRAPHIC"),
    "han": ("CJK",),
    "hangul": ("HANGUL",),
    "cyrillic": ("CYRILLIC",),
    "greek": ("GREEK",),
    "arabic": ("ARABIC",),
    "hebrew": ("HEBREW",),
    "devanagari": ("DEVANAGARI",),
    "thai": ("THAI",),
}


@lru_cache(maxsize=65536)
def in_script(ch: str, script: str) -> bool:
    """Whether a letter belongs to a script key of SCRIPTS (by its Unicode character name)."""
    return unicodedata.name(ch, "").startswith(SCRIPTS[script])


class LanguageOptions(RewardOptions):
    script: Literal[tuple(SCRIPTS)] = Field("latin", description="target script of the reasoning")
    region: Literal["think", "all"] = Field(
        "think", description="score the <think> block when present (else the whole text), or all of it")


class LanguageReward(Reward):
    """Language consistency (DeepSeek-R1): share of the reasoning's letters written in the target script."""

    name = "language"
    Options = LanguageOptions
    description = "share of reasoning letters in the target script (Latin, CJK, ...)"
    _think = re.compile(r"<think>(.*?)(?:</think>|$)", re.DOTALL)

    def score(self, samples: list[Sample]) -> list[RewardResult]:
        target = self.options.script
        out = []
        for s in samples:
            text = s.text
            if self.options.region == "think":
                m = self._think.search(text)
                text = m.group(1) if m else text
            letters = [c for c in text if c.isalpha()]
            if not letters:
                out.append(RewardResult(None, info={"status": "no_letters"}))
                continue
            hits = sum(1 for c in letters if in_script(c, target))
            out.append(RewardResult(hits / len(letters), info={"letters": len(letters), "in_script": hits}))
        return out


class OverlongOptions(RewardOptions):
    max_length: int = Field(1024, gt=0, description="L_max: the generation limit")
    cache_length: int = Field(256, ge=0, description="L_cache: soft zone before L_max where the penalty ramps")
    unit: Literal["tokens", "chars"] = Field("tokens", description="measure completion_ids or characters")

    @field_validator("cache_length")
    @classmethod
    def _fits(cls, v, info):
        if "max_length" in info.data and v > info.data["max_length"]:
            raise ValueError("cache_length must not exceed max_length")
        return v


class OverlongReward(Reward):
    """DAPO soft overlong punishment: 0 up to L_max - L_cache, ramps to -1 at L_max, -1 beyond."""

    name = "overlong"
    Options = OverlongOptions
    description = "DAPO soft overlong penalty on completion length"

    def score(self, samples: list[Sample]) -> list[RewardResult]:
        o = self.options
        out = []
        for i, s in enumerate(samples):
            if o.unit == "tokens":
                if s.completion_ids is None:
                    raise ValueError("unit is 'tokens' but the sample has no completion_ids "
                                     "(pass them, or set option unit: chars)")
                length = len(s.completion_ids)
            else:
                length = len(s.text)
            out.append(RewardResult(overlong_penalty(length, o.max_length, o.cache_length), info={"length": length}))
        return out


def overlong_penalty(length: int, max_length: int, cache_length: int) -> float:
    """DAPO eq. 13: R_length(y) for |y| = length."""
    soft_start = max_length - cache_length
    if length <= soft_start:
        return 0.0
    if length <= max_length:
        return (soft_start - length) / cache_length
    return -1.0
