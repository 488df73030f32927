"""Answer classes for majority voting: the math reward's key for a sample's answer and its
equality check between two answers, so ``1/2``, ``0.5`` and ``\\frac{1}{2}`` vote together.

Two answers are the same when the reward's own check accepts either one as the gold for the
other (the check is not symmetric: a rounded decimal only matches an exact gold). Checks that
need sympy go to the reward's worker pool, so a vote is as bounded in time as a score.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

from .equivalence import CheckOptions, check
from .numeric import NeedSympy

VOTING_STATUSES = ("correct", "incorrect", "unparseable", "timeout")  # statuses that carry an answer


def answer_key(info: dict) -> str | None:
    """The extracted answer of a scored sample, trimmed; None when it states none (it abstains)."""
    found = info.get("extracted")
    if info.get("status") not in VOTING_STATUSES or not isinstance(found, str):
        return None
    key = found.strip().strip("$").strip()
    return key or None


@lru_cache(maxsize=65536)
def _in_process(a: str, b: str, opts: CheckOptions) -> bool | None:
    """True / False decided without sympy; None when only the worker pool can decide."""
    try:
        return check(a, b, opts, sympy_ok=False) == "correct" or check(b, a, opts, sympy_ok=False) == "correct"
    except NeedSympy:
        return None
    except Exception:  # noqa: BLE001 - a reader bug on one odd answer must not end a vote
        return False  # an answer the reader cannot take apart matches nothing but itself


def same_answer(a: str, b: str, opts: CheckOptions, pool: Callable[[], object] | None = None) -> bool:
    """Whether answers ``a`` and ``b`` are equal under the reward's check (never raises)."""
    if a == b:
        return True
    if not isinstance(a, str) or not isinstance(b, str):
        return False
    verdict = _in_process(a, b, opts)
    if verdict is not None:
        return verdict
    if pool is None:
        return False
    try:
        outcomes = pool().run([(a, b, tuple(opts)), (b, a, tuple(opts))])
    except Exception:  # noqa: BLE001 - a pool that cannot start must not end an evaluation
        return False
    return any(status == "correct" for status, _ in outcomes)


def clear_cache() -> None:
    """Forget the in-process verdicts (benchmarks start cold with it)."""
    _in_process.cache_clear()
