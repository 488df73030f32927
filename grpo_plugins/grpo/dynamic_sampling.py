"""DAPO dynamic sampling's bookkeeping: which groups carry signal, and one batch cut from several
generation rounds (rows selected whole groups at a time, prompts re-padded on the left and
completions on the right, the sampler's log-probs (vLLM) padded like the completions, the scores and
each round's advantage credit selected alike, so no advantage is computed twice).

The loop itself is ``GRPOTrainer._sample_batch``: it draws rounds of prompts until every process
holds ``prompts_per_step / world`` groups with signal (a non-zero term of ``train.dynamic_sampling_reward``,
``GRPOTrainer._signal``), or the round bound is hit.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from .advantages import Credit
from .generation import RolloutBatch


def groups_with_signal(adv: torch.Tensor, group_size: int) -> list[bool]:
    """Per group: does any token of any member have a non-zero advantage? adv: [B, T] (masked)."""
    B = adv.shape[0]
    return (adv.abs().reshape(B // group_size, -1).sum(-1) > 0).tolist()


def next_draw(missing: int, kept: int, drawn: int, world: int, cap: int) -> int:
    """Prompts to draw in the next round (a multiple of ``world``, at most ``cap``).

    ``missing``: the most groups any one process still needs; ``kept / drawn``: the share of groups
    with signal so far (over all processes). Each process gets draw / world prompts: enough for the
    neediest one at the observed rate with a two-sigma margin (missing + 2 sqrt(missing)), because
    a round that falls just short costs a whole extra generation pass.
    """
    rate = max(kept / max(drawn, 1), 1 / 16)  # never plan on a rate below 1 in 16
    per_process = math.ceil((missing + 2 * math.sqrt(missing)) / rate)
    return max(world, min(cap, per_process * world) // world * world)


def _rows(group_size: int, groups: list[int]) -> list[int]:
    return [g * group_size + j for g in groups for j in range(group_size)]


def _credit_rows(parts: list[tuple[Credit, torch.Tensor]], length: int) -> Credit:
    """The chosen rows of each round's credit, process terms right-padded with 0 to ``length``."""
    def cat(name: str, pad: bool = False):
        got = [(getattr(c, name), i) for c, i in parts]
        if got[0][0] is None:
            return None
        return torch.cat([torch.nn.functional.pad(x[i], (0, length - x.shape[1])) if pad else x[i] for x, i in got])

    return Credit(cat("rewards"), cat("outcome"), cat("process", pad=True))


def assemble(rounds: list, chosen: list[tuple[int, int]], group_size: int, pad_id: int):
    """(RolloutBatch, Scores, Credit) from (round, group) pairs of ``rounds`` [(RolloutBatch, Scores, Credit)].

    Scores' metrics are those of the first round (the policy's unfiltered rollouts)."""

    parts = []
    for r, (batch, scores, credit) in enumerate(rounds):
        groups = [g for rr, g in chosen if rr == r]
        if groups:
            parts.append((batch, scores, credit, _rows(group_size, groups)))
    P = max(b.prompt_ids.shape[1] for b, *_ in parts)
    T = max(b.completion_ids.shape[1] for b, *_ in parts)
    prompt_ids, prompt_mask, completion_ids, mask, truncated, rollouts, sampler = [], [], [], [], [], [], []
    results: dict[str, list] = {label: [] for label in rounds[0][1].results}
    totals, credits = [], []
    for batch, scores, credit, idx in parts:
        i = torch.tensor(idx, dtype=torch.long)
        pp = P - batch.prompt_ids.shape[1]
        tt = T - batch.completion_ids.shape[1]
        prompt_ids.append(torch.nn.functional.pad(batch.prompt_ids[i], (pp, 0), value=pad_id))
        prompt_mask.append(torch.nn.functional.pad(batch.prompt_mask[i], (pp, 0), value=0))
        completion_ids.append(torch.nn.functional.pad(batch.completion_ids[i], (0, tt), value=pad_id))
        mask.append(torch.nn.functional.pad(batch.mask[i], (0, tt), value=0))
        truncated.append(batch.truncated[i])
        if batch.sampler_logp is not None:  # vLLM's log-probs, for the importance-sampling correction
            sampler.append(torch.nn.functional.pad(batch.sampler_logp[i], (0, tt), value=0.0))
        rollouts += [batch.rollouts[k] for k in idx]
        for label, res in scores.results.items():
            results[label] += [res[k] for k in idx]
        totals += [scores.totals[k] for k in idx]
        credits.append((credit, i))
    out = RolloutBatch(torch.cat(prompt_ids), torch.cat(prompt_mask), torch.cat(completion_ids), torch.cat(mask),
                       torch.cat(truncated), rollouts, torch.cat(sampler) if len(sampler) == len(parts) else None)
    first = rounds[0][1]
    return (out, replace(first, results=results, totals=totals, metrics=dict(first.metrics)),
            _credit_rows(credits, T))
