"""The ``math`` reward: is the completion's final answer equal to the gold answer?"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Literal

from pydantic import Field

from grpo_plugins import Reward, RewardOptions, RewardResult, Sample

from .equivalence import CheckOptions, check
from .extract import extract_answer, extract_choice, extract_gold, gold_choice
from .numeric import NeedSympy
from .pool import CheckPool
from . import voting

STATUSES = ("correct", "incorrect", "no_answer", "unparseable", "timeout")
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
    fallback_number: bool = Field(False, description="use the last number of the completion when no answer "
                                                     "is marked (box, <answer>, 'final answer is', ...)")
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
        self.check_options = CheckOptions(o.tolerance, o.percent, o.rounding)
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
            info = self._verdict(i, s)
            infos.append(info)
            if info["status"] is None:
                hard.setdefault((info["gold"], info["extracted"]), []).append(i)
        if hard:
            keys = list(hard)
            outcomes = self.pool.run([(g, p, tuple(self.check_options)) for g, p in keys])
            for key, (status, detail) in zip(keys, outcomes):
                if status == "memory":
                    status, detail = "timeout", detail or "memory cap"
                if status != "timeout":
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

    def _verdict(self, i: int, s: Sample) -> dict:
        """Info for one sample; status None means a worker must decide."""
        o = self.options
        if o.answer_column not in s.columns:
            raise KeyError(f"sample {i} has no gold column {o.answer_column!r} (columns: "
                           f"{', '.join(sorted(s.columns)) or 'none'}); set option answer_column")
        try:
            gold = extract_gold(s.columns[o.answer_column])
        except ValueError as exc:
            raise ValueError(f"sample {i}, column {o.answer_column!r}: {exc}") from None
        found = extract_answer(s.text, o.fallback_number)
        info = {"status": "no_answer", "extracted": found.text if found else None,
                "source": found.source if found else None, "gold": gold}
        letter = gold_choice(gold)
        if letter is not None:
            picked = extract_choice(s.text, found.text if found else None)
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
        except (ArithmeticError, ValueError, TypeError, RecursionError) as exc:
            # a reader bug on one odd answer must not fail the whole batch
            info.update(status="unparseable", detail=f"{type(exc).__name__}: {exc}"[:300])
        return info

    def _remember(self, key: tuple[str, str], status: str) -> None:
        self._cache[key] = status
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
