"""Math-Shepherd automatic step labels: for each step prefix of a rollout, N continuations sampled
from the policy; a checker reward (``math``) grades their final answers. Soft label = share of
correct continuations, hard label = any correct. The last step's label is the rollout's own
correctness (its prefix is the whole completion)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from ..continuations import Generate, Prefix, correct_shares
from ..host import RewardHost
from ..steps import StepFormat

__all__ = ["Generate", "LabelStats", "label_rollouts"]


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


def label_rollouts(rollouts: Sequence[dict[str, Any]], generate: Generate, host: RewardHost, reward: str,
                   step_format: StepFormat, n: int = 4, max_new_tokens: int = 64, budget: int | None = None,
                   threshold: float = 1.0, batch_size: int = 256) -> tuple[list[dict[str, Any]], LabelStats]:
    """Label the steps of rollouts ({prompt, completion, columns}); returns records for the PRM and stats.

    Each record: prompt, completion, ``steps`` [[start, end, soft]], ``hard`` labels, ``outcome``
    correctness, plus the rollout's columns. ``budget`` caps the continuations sampled in total;
    rollouts that do not fit are skipped whole, so every record is fully labelled.
    """
    stats = LabelStats(rollouts=len(rollouts))
    plans = []  # (rollout, spans)
    prefixes: list[Prefix] = []
    for ro in rollouts:
        spans = step_format.spans(ro["completion"])
        if not spans:
            stats.skipped_no_steps += 1
            continue
        cost = (len(spans) - 1) * n
        if budget is not None and stats.continuations + cost > budget:
            stats.skipped_budget += 1
            continue
        plans.append((ro, spans))
        columns = ro.get("columns", {})
        # the last step's prefix is the whole completion: its own correctness, no continuations
        prefixes += [Prefix(ro["prompt"], ro["completion"][:end], n, columns) for _, end in spans[:-1]]
        prefixes.append(Prefix(ro["prompt"], ro["completion"], 0, columns))
        stats.continuations += cost
    shares = correct_shares(prefixes, generate, host, reward, max_new_tokens, threshold, batch_size)
    records, pos = [], 0
    for ro, spans in plans:
        soft = shares[pos : pos + len(spans)]
        pos += len(spans)
        records.append({**ro.get("columns", {}), "prompt": ro["prompt"], "completion": ro["completion"],
                        "steps": [[s, e, v] for (s, e), v in zip(spans, soft)],
                        "hard": [1.0 if v > 0 else 0.0 for v in soft], "outcome": soft[-1] == 1.0})
        stats.steps += len(spans)
    stats.labelled = len(records)
    return records, stats
