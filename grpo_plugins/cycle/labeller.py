"""Math-Shepherd automatic step labels: for each step prefix of a rollout, N continuations sampled
from the policy; a checker reward (``math``) grades their final answers. Soft label = share of
correct continuations, hard label = any correct. The last step's label is the rollout's own
correctness (its prefix is the whole completion)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..host import RewardHost
from ..rewards import Sample

from ..steps import StepFormat

# generate(texts, max_new_tokens) -> one sampled continuation per text (text already ends in the prefix)
Generate = Callable[[list[str], int], list[str]]


@dataclass
class LabelStats:
    """What a labelling run cost and produced."""

    rollouts: int = 0
    labelled: int = 0
    skipped_budget: int = 0
    skipped_no_steps: int = 0
    continuations: int = 0
    steps: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _correct(host: RewardHost, label: str, samples: list[Sample], threshold: float) -> list[bool]:
    results = host.score(samples).results[label]
    return [r.applicable and r.value >= threshold for r in results]


def label_rollouts(rollouts: Sequence[dict[str, Any]], generate: Generate, host: RewardHost, reward: str,
                   step_format: StepFormat, n: int = 4, max_new_tokens: int = 64, budget: int | None = None,
                   threshold: float = 1.0, batch_size: int = 256) -> tuple[list[dict[str, Any]], LabelStats]:
    """Label the steps of rollouts ({prompt, completion, columns}); returns records for the PRM and stats.

    Each record: prompt, completion, ``steps`` [[start, end, soft]], ``hard`` labels, ``outcome``
    correctness, plus the rollout's columns. ``budget`` caps the continuations sampled in total;
    rollouts that do not fit are skipped whole, so every record is fully labelled.
    """
    stats = LabelStats(rollouts=len(rollouts))
    plans = []  # (rollout, spans, first continuation index)
    texts: list[str] = []
    for ro in rollouts:
        spans = step_format.spans(ro["completion"])
        if not spans:
            stats.skipped_no_steps += 1
            continue
        cost = (len(spans) - 1) * n
        if budget is not None and stats.continuations + cost > budget:
            stats.skipped_budget += 1
            continue
        plans.append((ro, spans, len(texts)))
        for _, end in spans[:-1]:
            texts += [ro["prompt"] + ro["completion"][:end]] * n
        stats.continuations += cost
    conts: list[str] = []
    for b in range(0, len(texts), batch_size):  # the policy samples in large batches
        conts += generate(texts[b : b + batch_size], max_new_tokens)
    samples = []
    for ro, spans, first in plans:
        for k, (_, end) in enumerate(spans[:-1]):
            for j in range(n):
                samples.append(Sample(ro["prompt"], ro["completion"][:end] + conts[first + k * n + j],
                                      columns=dict(ro.get("columns", {}))))
        samples.append(Sample(ro["prompt"], ro["completion"], columns=dict(ro.get("columns", {}))))
    ok = _correct(host, reward, samples, threshold) if samples else []
    records, pos = [], 0
    for ro, spans, _ in plans:
        soft = []
        for _k in spans[:-1]:
            soft.append(sum(ok[pos : pos + n]) / n)
            pos += n
        outcome = ok[pos]
        pos += 1
        soft.append(1.0 if outcome else 0.0)
        records.append({**ro.get("columns", {}), "prompt": ro["prompt"], "completion": ro["completion"],
                        "steps": [[s, e, v] for (s, e), v in zip(spans, soft)],
                        "hard": [1.0 if v > 0 else 0.0 for v in soft], "outcome": bool(outcome)})
        stats.steps += len(spans)
    stats.labelled = len(records)
    return records, stats
