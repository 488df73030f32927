"""Advantages: one representation for outcome and step credit, a per-token tensor [B, T].

Shapes: B = number of completions in the batch (prompts x G, groups contiguous: completion i
belongs to group i // G), T = padded completion length. Every formula here is written for one
batch; the trainer calls them on the whole rollout batch before splitting it into micro-batches,
so no group is ever normalised piecewise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..io import finite_or_none
from ..steps import step_end_tokens, token_offsets

# -- outcome ----------------------------------------------------------------------------------


def group_stats(r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """NaN-aware (count, mean, unbiased std) of each row of r [N, G]; std is NaN with fewer than 2 values."""
    valid = ~torch.isnan(r)
    n = valid.sum(-1)
    mean = torch.where(valid, r, 0).sum(-1) / n.clamp(min=1)
    var = torch.where(valid, (r - mean[:, None]) ** 2, 0).sum(-1) / (n - 1).clamp(min=1)
    return n, mean, torch.where(n > 1, var.sqrt(), torch.full_like(var, float("nan")))


def outcome_advantages(rewards: torch.Tensor, group_size: int, scale: str = "group",
                       eps: float = 1e-4) -> torch.Tensor:
    """Group-normalised outcome advantages (DeepSeekMath eq. 4; TRL's ``scale_rewards``).

    rewards: [B] float, NaN where no reward applies (such completions get advantage 0 and do not
    enter the group statistics). Returns [B]:

        A_i = (r_i - mean_group) / (std + eps)

    with std the unbiased group std (``scale="group"``), the std of the whole batch
    (``"batch"``) or 1 (``"none"``, Dr. GRPO). A group whose rewards are all equal gives 0, never NaN.
    """
    if rewards.dim() != 1 or rewards.numel() % group_size:
        raise ValueError(f"rewards must be [B] with B a multiple of group_size={group_size}, got {tuple(rewards.shape)}")
    n, mean, group_std = group_stats(rewards.view(-1, group_size))
    r = rewards.view(-1, group_size)
    centered = torch.where(torch.isnan(r), torch.zeros_like(r), r - mean[:, None])
    if scale == "group":
        std = torch.nan_to_num(group_std, nan=0.0)[:, None]
    elif scale == "batch":
        std = batch_std(rewards)
    elif scale == "none":
        std = torch.ones((), dtype=rewards.dtype)
        eps = 0.0
    else:
        raise ValueError(f"scale must be group | batch | none, got {scale!r}")
    return (centered / (std + eps)).reshape(-1)


def batch_std(rewards: torch.Tensor) -> torch.Tensor:
    """Unbiased std of the applicable (non-NaN) rewards [N], 0 with fewer than two: ``scale_rewards: batch``."""
    flat = rewards[~torch.isnan(rewards)]
    return flat.std() if flat.numel() > 1 else torch.zeros((), dtype=rewards.dtype)


def zero_std_fraction(rewards: torch.Tensor, group_size: int) -> float:
    """Share of groups whose (applicable) rewards are all equal: TRL's ``frac_reward_zero_std``."""
    r = rewards.view(-1, group_size)
    lo = torch.where(torch.isnan(r), torch.full_like(r, float("inf")), r).min(-1).values
    hi = torch.where(torch.isnan(r), torch.full_like(r, float("-inf")), r).max(-1).values
    return float(((hi - lo) <= 0).logical_or(torch.isinf(lo)).float().mean())


# -- process ----------------------------------------------------------------------------------


def process_advantages(step_ends: Sequence[Sequence[int]], step_rewards: Sequence[Sequence[float]],
                       group_size: int, length: int, eps: float = 1e-4, reduce: str = "sum",
                       floor: float | None = None) -> torch.Tensor:
    """Process-supervised advantages (DeepSeekMath section 4.1.3).

    step_ends[i]: token index (0-based, in completion i) of the last token of each step of i.
    step_rewards[i]: the reward of each of those steps. Returns [B, length]:

        r~_j = (r_j - mean(all step rewards of the group)) / (std(same) + eps)   [or max(std, floor)]
        A_{i,t} = sum of r~_j over the steps j of completion i with end(j) >= t

    so a token is credited with the normalised rewards of its own step and every later step.
    Tokens after the last step get 0. std is unbiased; a group with fewer than two step rewards or
    with equal step rewards gives 0.

    ``floor`` replaces ``std + eps`` by ``max(std, floor)``: a group of near-constant scores (a PRM's
    0.5 +- 0.001) keeps advantages of the size of its spread over the floor instead of unit-size
    noise (issue 24). None keeps ``std + eps``.

    ``reduce="mean"`` divides that sum by the number of steps it adds (the token's own and later
    steps), so a completion's credit does not grow with its step count: under ``sum`` a trace of
    2k correct steps gets twice the advantage of a trace of k correct steps with the same rewards
    (tests/test_process_advantage.py), which pays for padding a solution with easy steps.
    """
    if reduce not in ("sum", "mean"):
        raise ValueError(f"reduce must be sum | mean, got {reduce!r}")
    B = len(step_ends)
    out = torch.zeros(B, length, dtype=torch.float64)
    for g in range(0, B, group_size):
        members = range(g, min(g + group_size, B))
        values = torch.tensor([v for i in members for v in step_rewards[i]], dtype=torch.float64)
        if values.numel() == 0:
            continue
        mean = values.mean()
        std = values.std() if values.numel() > 1 else torch.zeros((), dtype=torch.float64)
        denom = std + eps if floor is None else std.clamp(min=floor)
        for i in members:
            count = torch.zeros(length, dtype=torch.float64)
            for end, v in zip(step_ends[i], step_rewards[i]):
                norm = (v - mean) / denom
                out[i, : min(end, length - 1) + 1] += norm
                count[: min(end, length - 1) + 1] += 1
            if reduce == "mean":
                out[i] = out[i] / count.clamp(min=1)
    return out


def step_token_ends(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[int]:
    """Index of the token that ends each char span; a step no token reaches (cut off) ends at the last token."""
    last = max(len(offsets) - 1, 0)
    return [last if k is None else k for k in step_end_tokens(offsets, spans)]


def process_credit(results, rollouts, tokenizer, group_size: int, length: int, eps: float = 1e-4,
                   reduce: str = "sum", floor: float | None = None) -> torch.Tensor:
    """One step reward's process advantages [B, length] from its results and the rollouts' token ids and text.

    Steps whose value is not finite are left out; a completion with no step left gets 0."""
    ends, values = [], []
    for res, ro in zip(results, rollouts):
        steps = [s for s in (res.steps or []) if finite_or_none(s[2]) is not None]
        offsets = token_offsets(tokenizer, ro.completion_ids, ro.text) if steps else []
        ends.append(step_token_ends(offsets, [(s, e) for s, e, _ in steps]))
        values.append([v for _, _, v in steps])
    return process_advantages(ends, values, group_size, length, eps, reduce, floor)


# -- the batch --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credit:
    """A batch's advantages before the batch-wide scale, per completion: what ``token_advantages`` sums.

    Every part is per group, so rows of several batches can be joined (dynamic sampling) and
    scaled once for the batch that trains."""

    rewards: torch.Tensor | None  # [B] float64 outcome rewards, NaN where none applies; None: no outcome reward
    outcome: torch.Tensor | None  # [B] float64 outcome term: group-centred, and group-scaled under scale "group"
    process: torch.Tensor | None  # [B, T] float64 weighted sum of the step rewards' process advantages


def outcome_credit(rewards: torch.Tensor, group_size: int, scale: str = "group", eps: float = 1e-4) -> torch.Tensor:
    """``outcome_advantages`` with scale "batch" left to ``token_advantages`` (centred only here) [B]."""
    return outcome_advantages(rewards, group_size, "none" if scale == "batch" else scale, eps)


@dataclass(frozen=True)
class Terms:
    """The two terms that train, after the batch-wide scales: ``combine(outcome, process, mask)`` is the advantage."""

    outcome: torch.Tensor | None  # [B] float64, over batch_std under scale "batch"
    process: torch.Tensor | None  # [B, T] float64, times ``scale``
    scale: float  # c, the factor the process term was multiplied by (1 under process_scale "none")
    outcome_mean_abs: float  # mean |outcome term| per completion token (over the mask), before c
    process_mean_abs: float  # mean |process term| per completion token, before c


def mean_abs_sums(outcome: torch.Tensor | None, process: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
    """[sum of |outcome| over masked tokens, same for |process|, masked token count], float64: what
    ``process_scale: match`` compares (summed over processes before dividing)."""
    m = mask.to(torch.float64)
    o = (outcome.abs()[:, None] * m).sum() if outcome is not None else torch.zeros((), dtype=torch.float64)
    p = (process.abs() * m).sum() if process is not None else torch.zeros((), dtype=torch.float64)
    return torch.stack([o, p, m.sum()])


def match_scale(sums: torch.Tensor) -> float:
    """c with mean |c * process| = mean |outcome| per token: outcome sum / process sum; 1 when the
    process term is all zero (nothing to scale).

    An all-zero outcome term gives c = 0: the process term is dropped for that batch, the limit of
    the rule, rather than trained at its unscaled size, the size the option exists to prevent."""
    o, p = float(sums[0]), float(sums[1])
    return o / p if p > 0 else 1.0


def advantage_terms(credit: Credit, mask: torch.Tensor, scale: str = "group", eps: float = 1e-4,
                    batch_rewards: torch.Tensor | None = None, process_scale: str = "none",
                    terms: str = "both", all_sum=None) -> Terms:
    """The outcome term over batch_std(batch_rewards or the credit's) when scale is "batch"; the process
    term times c (``process_scale: match``, see ``match_scale``; "none": c = 1); ``terms="process_only"``
    drops the outcome term (DeepSeekMath's process supervision). ``all_sum`` sums a float64 tensor over
    processes (the mean-abs sums), identity by default."""
    if process_scale not in ("match", "none"):
        raise ValueError(f"process_scale must be match | none, got {process_scale!r}")
    if terms not in ("both", "process_only"):
        raise ValueError(f"terms must be both | process_only, got {terms!r}")
    outcome = None if terms == "process_only" else credit.outcome
    if scale == "batch" and outcome is not None:
        outcome = outcome / (batch_std(credit.rewards if batch_rewards is None else batch_rewards) + eps)
    process = credit.process
    if process is None:
        return Terms(outcome, None, 1.0, 0.0, 0.0)
    sums = mean_abs_sums(outcome, process, mask)
    sums = sums if all_sum is None else all_sum(sums)
    n = float(sums[2]) or 1.0
    c = match_scale(sums) if process_scale == "match" and outcome is not None else 1.0
    return Terms(outcome, process if c == 1.0 else process * c, c, float(sums[0]) / n, float(sums[1]) / n)


def token_advantages(credit: Credit, mask: torch.Tensor, scale: str = "group", eps: float = 1e-4,
                     batch_rewards: torch.Tensor | None = None, process_scale: str = "none",
                     terms: str = "both") -> torch.Tensor:
    """Per-token advantages [B, T] of one process's batch: ``combine`` of ``advantage_terms``."""
    t = advantage_terms(credit, mask, scale, eps, batch_rewards, process_scale, terms)
    return combine(t.outcome, t.process, mask)


def mean_over_mask(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x [B, T] over each row's mask [B, T] (0 for an empty row), on x's device: no indexing."""
    m = mask.to(x.dtype)
    return (x * m).sum(-1) / m.sum(-1).clamp(min=1)


def combine(outcome: torch.Tensor | None, process: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
    """Per-token advantages [B, T]: outcome [B] broadcast over tokens plus process [B, T], masked."""
    adv = torch.zeros(mask.shape, dtype=torch.float32)
    if outcome is not None:
        adv = adv + outcome.to(torch.float32)[:, None]
    if process is not None:
        adv = adv + process.to(torch.float32)
    return adv * mask
