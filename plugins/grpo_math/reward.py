"""The ``math`` reward: is the completion's final answer equal to the gold answer?"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Literal

from pydantic import Field

from grpo_plugins import Reward, RewardOptions, RewardResult, Sample

from .equivalence import CheckOptions, check, same_text
from .extract import MAX_ANSWER, Extraction, extract_answer, extract_choice, extract_gold, gold_choice
from .numeric import NeedSympy
from . import voting
from .pool import CheckPool, WorkerStartError

STATUSES = ("correct", "incorrect", "no_answer", "unparseable", "timeout", "error")
CACHE_SIZE = 16384  # verdicts of (gold, answer) pairs the pool decided


def default_workers() -> int:
    """Worker processes when the option is unset: most checks never leave the calling process."""
    return max(1, min(8, os.cpu_count() or 1))


class MathOptions(RewardOptions):
    answer_column: str = Field("answer", min_length=1, description="dataset column holding the gold answer")
    tolerance: float = Field(1e-6, ge=0, le=0.1,
                             description="relative tolerance, used only when either side is written as a decimal")
    rounding: bool = Field(True, description="also accept a decimal that is the exact answer rounded to the digits "
                                             "it states (3+ significant digits: 1.732 for \\sqrt{3})")
    percent: Literal["either", "fraction", "number"] = Field(
        "either", description="what 50\\% equals: 0.5 (fraction), 50 (number), or either")
    extraction: Extraction = Field(
        "any", description="which answers count: any (a marked answer, else the last math span, else a completion "
                           "that is an answer as a whole, else the last number: what Math-Verify and lighteval read), "
                           "latex (marked or the last LaTeX math span), marked (only boxed, <answer>, 'final answer "
                           "is', '####' or bold answers)")
    rounding_digits: int = Field(3, ge=1, le=30, description="fewest significant digits a decimal needs to be "
                                                             "accepted as the exact answer rounded (with rounding)")
    relation_intervals: Literal["gold", "both"] = Field(
        "gold", description="inequality against interval: gold (an inequality gold accepts the interval, an "
                            "interval gold does not accept an inequality, as Math-Verify) or both")
    bare_braces: Literal["any", "set"] = Field(
        "any", description="what {1,3} (braces without backslashes) equals: any (the tuple (1,3) or the set), "
                           "set (only the set \\{1,3\\})")
    decimal_comma: Literal["auto", "never"] = Field(
        "auto", description="auto: 2,74 is 2.74 where one side is a single number (never a thousands group "
                            "like 1,000); never: a comma always separates answers")
    choices: Literal["auto", "letters"] = Field(
        "auto", description="multiple choice: auto (a gold that is a letter A-E), letters (also read the letter "
                            "from golds like '(D) Alina' and from bare letters in completions)")
    correct: float = Field(1.0, description="value when the answer is correct")
    incorrect: float = Field(0.0, description="value when it is wrong, unparseable or timed out")
    no_answer: float = Field(0.0, description="value when the completion states no answer")
    timeout: float = Field(3.0, gt=0, le=600, description="seconds one symbolic check may run in a worker process "
                                                          "before the worker is killed (status timeout)")
    workers: int | None = Field(None, ge=1, le=256, description="worker processes for symbolic checks "
                                                                "(default: CPU count, at most 8)")
    memory_mb: int = Field(1024, ge=256, description="address-space cap of each worker process, in MB")


class MathReward(Reward):
    """Final-answer correctness: extraction, LaTeX normalisation, exact/tolerant/symbolic equivalence."""

    name = "math"
    granularity = "outcome"
    Options = MathOptions
    description = "final answer equals the gold answer (sympy-checked; statuses in info)"

    def __init__(self, options=None):
        super().__init__(options)
        o = self.options
        self.check_options = CheckOptions(o.tolerance, o.percent, o.rounding, o.rounding_digits,
                                          o.relation_intervals, o.bare_braces, o.decimal_comma)
        self._pool: CheckPool | None = None
        self._pool_lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, str], str] = OrderedDict()

    def __getstate__(self):
        # a process-pool reward travels without its workers; it starts its own where it lands
        state = self.__dict__.copy()
        state.update(_pool=None, _pool_lock=None, _cache=OrderedDict())
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._pool_lock = threading.Lock()

    @property
    def pool(self) -> CheckPool:
        """The worker pool for symbolic checks, started on first use."""
        with self._pool_lock:
            if self._pool is None:
                o = self.options
                self._pool = CheckPool(o.workers or default_workers(), o.timeout, o.memory_mb)
            return self._pool

    def required_columns(self) -> list[str]:
        """The gold answer's column."""
        return [self.options.answer_column]

    def close(self) -> None:
        """Kill the worker processes (a later score starts new ones)."""
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    def score(self, samples: list[Sample]) -> list[RewardResult]:
        """Decide easy checks here, send the rest (deduplicated) to the worker pool in one batch."""
        o = self.options
        infos: list[dict] = []
        hard: dict[tuple[str, str], list[int]] = {}  # symbolic checks, deduplicated
        for i, s in enumerate(samples):
            try:
                info = self._verdict(i, s, len(samples) > 1)
            except (KeyError, ValueError) as exc:
                if getattr(exc, "user_error", False):
                    raise
                info = _error_info(exc)
            except Exception as exc:  # noqa: BLE001 - a verifier bug must not stop a training run
                info = _error_info(exc)
            infos.append(info)
            if info["status"] is None:
                hard.setdefault((info["gold"], info["extracted"]), []).append(i)
        if hard:
            keys = list(hard)
            try:
                outcomes = self.pool.run([(g, p, tuple(self.check_options)) for g, p in keys])
            except Exception as exc:  # noqa: BLE001 - a pool bug makes these checks errors, not a failed run
                if isinstance(exc, WorkerStartError):
                    raise  # a broken environment: every batch would fail, so say so at once
                outcomes = [("error", f"{type(exc).__name__}: {exc}"[:300])] * len(keys)
            for key, (status, detail) in zip(keys, outcomes):
                if status == "memory":
                    status, detail = "timeout", detail or "memory cap"
                if status not in ("timeout", "error"):
                    self._remember(key, status)
                for i in hard[key]:
                    infos[i]["status"] = status
                    if detail:
                        infos[i]["detail"] = detail
        values = {"correct": o.correct, "no_answer": o.no_answer}
        return [RewardResult(values.get(info["status"], o.incorrect), info=info) for info in infos]

    def answer_key(self, sample: Sample, result: RewardResult) -> str | None:
        """The extracted answer, for majority voting (see voting.py); None when there is none."""
        return voting.answer_key(result.info)

    def same_answer(self, a: str, b: str) -> bool:
        """Equal answers under this reward's check, either way round (1/2, 0.5, \\frac{1}{2})."""
        return voting.same_answer(a, b, self.check_options, lambda: self.pool)

    def _verdict(self, i: int, s: Sample, name_it: bool = True) -> dict:
        """Info for one sample; status None means a worker must decide.

        Data errors name the sample only in a batch of several: the host rescores a failed batch
        sample by sample and names the index itself ("failed on sample 3: ..."), where ours would be 0.
        """
        o = self.options
        where = f"sample {i}, " if name_it else ""
        if o.answer_column not in s.columns:
            raise _user(KeyError(f"{where}no gold column {o.answer_column!r} (columns: "
                                 f"{', '.join(sorted(s.columns)) or 'none'}); set option answer_column"))
        try:
            gold = extract_gold(s.columns[o.answer_column])
        except ValueError as exc:
            raise _user(ValueError(f"{where}column {o.answer_column!r}: {exc}")) from None
        text = s.text
        if not isinstance(text, str):
            raise TypeError(f"completion of sample {i} is {type(text).__name__}, not text")
        if same_text(text, gold):  # identical strings are equal before any extraction or parsing
            return {"status": "correct", "extracted": text.strip()[:MAX_ANSWER], "source": "identical", "gold": gold}
        found = extract_answer(text, o.extraction)
        info = {"status": "no_answer", "extracted": found.text if found else None,
                "source": found.source if found else None, "gold": gold}
        letter = gold_choice(gold, o.choices == "letters")
        if letter is not None:
            picked = extract_choice(text, found.text if found else None, o.choices == "letters")
            info["extracted"] = picked if picked else info["extracted"]
            if picked is not None:
                info["status"] = "correct" if picked == letter else "incorrect"
            return info
        if found is None:
            return info
        key = (gold, found.text)
        if key in self._cache:
            info["status"] = self._cache[key]
            return info
        try:
            info["status"] = check(gold, found.text, self.check_options, sympy_ok=False)
        except NeedSympy:
            info["status"] = None
        return info

    def _remember(self, key: tuple[str, str], status: str) -> None:
        if len(key[0]) + len(key[1]) > 2000:
            return  # long pairs would bloat the cache and seldom repeat
        self._cache[key] = status
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)


def _user(exc: Exception) -> Exception:
    """Mark a data error the user must fix (missing or bad gold column): it raises, naming the sample."""
    exc.user_error = True
    return exc


def _error_info(exc: BaseException) -> dict:
    """Info of a check the verifier itself failed on: status error, the exception named."""
    return {"status": "error", "extracted": None, "source": None, "gold": None,
            "detail": f"{type(exc).__name__}: {exc}"[:300]}
