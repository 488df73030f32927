"""Learning-rate schedules: transformers' own, so warm-up and decay match what TRL users know."""

from __future__ import annotations


def make_scheduler(optimizer, kind: str, warmup: int, total: int):
    """transformers' schedule ``kind`` (constant / linear / cosine), each after ``warmup`` linear updates."""
    from transformers import get_scheduler

    name = "constant_with_warmup" if kind == "constant" else kind
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=max(total, warmup, 1))
