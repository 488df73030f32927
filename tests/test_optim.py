"""Learning-rate schedules (transformers' own) against their closed forms in float64."""

import math

import pytest
import torch

from grpo_plugins.grpo.optim import make_scheduler


def closed_form(kind: str, n: int, warmup: int, total: int) -> float:
    if n < warmup:
        return n / warmup
    if kind == "constant":
        return 1.0
    progress = (n - warmup) / max(1, total - warmup)
    return max(0.0, 1.0 - progress) if kind == "linear" else max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


@pytest.mark.parametrize("kind", ["constant", "linear", "cosine"])
@pytest.mark.parametrize("warmup,total", [(0, 10), (3, 10), (5, 5)])
def test_schedule_matches_its_closed_form(kind, warmup, total):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    sched = make_scheduler(opt, kind, warmup, total)
    for n in range(total):
        assert sched.get_last_lr()[0] == pytest.approx(0.5 * closed_form(kind, n, warmup, max(total, warmup, 1)),
                                                       rel=1e-12, abs=1e-15), (kind, n)
        opt.step()
        sched.step()
