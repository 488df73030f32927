"""Held-out evaluation of a policy through the trainer's rollout path and reward host."""

from __future__ import annotations

import torch


def greedy_accuracy(trainer, rows, max_new_tokens: int | None = None) -> dict[str, float]:
    """Greedy completions for ``rows`` scored by the trainer's rewards; accuracy on ``eval.reward``.

    A completion is correct when that reward's value is at least ``eval.threshold``."""
    cfg = trainer.cfg
    max_new = max_new_tokens or cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens
    label = getattr(trainer, "eval_label", None) or cfg.eval.reward or cfg.rewards[0].label
    rows = list(rows)
    correct = n = lengths = 0
    state = torch.get_rng_state()  # greedy decoding draws no numbers, but keep training's RNG untouched
    for s in range(0, len(rows), cfg.eval.batch_size):
        chunk = rows[s:s + cfg.eval.batch_size]
        batch = trainer.generate(chunk, n=1, greedy=True, max_new_tokens=max_new)
        scores = trainer.host.score(batch.rollouts)
        correct += sum(int(r.applicable and r.value >= cfg.eval.threshold) for r in scores.results[label])
        n += len(chunk)
        lengths += int(batch.mask.sum())
    torch.set_rng_state(state)
    return {"eval/accuracy": correct / max(n, 1), "eval/correct": float(correct), "eval/n": float(n),
            "eval/mean_length": lengths / max(n, 1)}
