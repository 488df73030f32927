"""Batches that mix the newest data with a fixed share of history (DeepSeekMath: about 10%)."""

from __future__ import annotations

import math
import random
from typing import Iterator, Sequence, TypeVar

T = TypeVar("T")


class HistorySampler:
    """Index batches over ``n_new`` new items and ``n_history`` old ones.

    Full batch ``b`` holds ``floor((b+1)*B*s) - floor(b*B*s)`` history items, so it is within one
    item of the share ``s`` and the running total is exact. The epoch's last batch, with the ``m`` new
    items left over, gets ``round(m*s/(1-s))`` history items: within one item of the share as well
    (a full batch's count would overshoot: 12 of 16 at s = 0.5 with 4 new items). New items are drawn
    without replacement (one pass of the new data per epoch); history items are drawn from reshuffled
    passes over the history. Indices ``0..n_new-1`` are new items, ``n_new..n_new+n_history-1``
    history items.
    """

    def __init__(self, n_new: int, n_history: int, batch_size: int, history_share: float = 0.1, seed: int = 0):
        if not 0 <= history_share < 1:
            raise ValueError(f"history_share must be in [0, 1), got {history_share}")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.n_new, self.n_history, self.batch_size = n_new, n_history, batch_size
        self.share = history_share if n_history else 0.0
        self.rng = random.Random(seed)

    def _history_in(self, b: int) -> int:
        return math.floor((b + 1) * self.batch_size * self.share) - math.floor(b * self.batch_size * self.share)

    def plan(self) -> list[tuple[int, int]]:
        """(new items, history items) of each batch in one epoch (one pass over the new items)."""
        out, b, left = [], 0, self.n_new
        while left > 0:
            k = self._history_in(b)
            m = min(left, self.batch_size - k)
            if m < self.batch_size - k:  # the short last batch: keep its own share, not a full batch's
                k = round(m * self.share / (1 - self.share))
            out.append((m, k))
            left -= m
            b += 1
        return out

    def __len__(self) -> int:
        """Batches in one epoch (one pass over the new items)."""
        return len(self.plan())

    def __iter__(self) -> Iterator[list[int]]:
        new = list(range(self.n_new))
        self.rng.shuffle(new)
        hist: list[int] = []
        pos = 0
        for m, k in self.plan():
            batch = new[pos : pos + m]
            pos += m
            for _ in range(k):
                if not hist:  # refill with a fresh shuffled pass over the history
                    hist = [self.n_new + i for i in range(self.n_history)]
                    self.rng.shuffle(hist)
                batch.append(hist.pop())
            self.rng.shuffle(batch)
            yield batch


def mix(new: Sequence[T], history: Sequence[T], batch_size: int, history_share: float = 0.1,
        seed: int = 0) -> list[list[T]]:
    """One epoch of batches over ``new`` with ``history_share`` of each batch drawn from ``history``."""
    items = list(new) + list(history)
    return [[items[i] for i in batch] for batch in HistorySampler(len(new), len(history), batch_size,
                                                                 history_share, seed)]
