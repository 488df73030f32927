"""Held-out PRM metrics: step accuracy and ROC AUC of P(good) against binary step labels."""

from __future__ import annotations

from typing import Sequence


def step_accuracy(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """Share of steps where (score > 0.5) equals the binary label; None without steps."""
    if not scores:
        return None
    return sum((s > 0.5) == bool(y) for s, y in zip(scores, labels)) / len(scores)


def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """Mann-Whitney ROC AUC (ties count half); None when only one class is present."""
    pos = sum(1 for y in labels if y)
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):  # tied scores share their average rank
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(r for r, y in zip(ranks, labels) if y)
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)
