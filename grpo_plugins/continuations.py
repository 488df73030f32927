"""Correct shares of sampled continuations: for each prefix of a completion, N continuations from a
policy, graded by an outcome reward. Math-Shepherd's step labels (the cycle's labeller) and the
``progress`` step reward (Q(prefix) under a prover) are both built on ``correct_shares``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .host import RewardHost
from .rewards import Sample

# generate(texts, max_new_tokens) -> one sampled continuation per text (text already ends in the prefix)
Generate = Callable[[list[str], int], list[str]]


@dataclass
class Prefix:
    """A completion prefix to estimate: ``n`` continuations of prompt + ``text``; ``n == 0`` grades
    ``text`` itself as a finished completion (share 1.0 or 0.0)."""

    prompt: Any  # what the graded Sample's prompt is
    text: str
    n: int
    columns: dict[str, Any] = field(default_factory=dict)
    prompt_text: str | None = None  # what the policy continues from; None = ``prompt`` (a string)

    @property
    def context(self) -> str:
        """The text the policy continues."""
        return (self.prompt if self.prompt_text is None else self.prompt_text) + self.text


def correct(host: RewardHost, label: str, samples: list[Sample], threshold: float) -> list[bool]:
    """Whether ``label``'s reward scores each sample at least ``threshold`` (not applicable: False)."""
    results = host.score(samples).results[label]
    return [r.applicable and r.value >= threshold for r in results]


def correct_shares(prefixes: Sequence[Prefix], generate: Generate, host: RewardHost, reward: str,
                   max_new_tokens: int = 64, threshold: float = 1.0, batch_size: int = 256) -> list[float]:
    """The share of each prefix's continuations that ``reward`` grades correct, in order.

    Continuations are sampled in one pass over all prefixes (``batch_size`` texts per ``generate``
    call, each prefix's ``n`` copies adjacent) and graded in one ``host.score`` call."""
    texts: list[str] = []
    for p in prefixes:
        texts += [p.context] * p.n
    conts: list[str] = []
    for b in range(0, len(texts), batch_size):  # the policy samples in large batches
        conts += generate(texts[b : b + batch_size], max_new_tokens)
    if len(conts) != len(texts):
        raise ValueError(f"generate returned {len(conts)} continuations for {len(texts)} texts")
    samples, pos = [], 0
    for p in prefixes:
        for c in conts[pos : pos + p.n] if p.n else [""]:
            samples.append(Sample(p.prompt, p.text + c, columns=dict(p.columns)))
        pos += p.n
    ok = correct(host, reward, samples, threshold) if samples else []
    shares, pos = [], 0
    for p in prefixes:
        k = max(p.n, 1)
        shares.append(sum(ok[pos : pos + k]) / k)
        pos += k
    return shares
