"""Learning-rate schedules against their closed forms in float64."""

import math

import pytest
import torch

from grpo_plugins.grpo.optim import make_scheduler


def closed_form(kind: str, n: int, warmup: int, total: int) -> float:
    if n < warmup:
        return (n + 1) / warmup  # the first update already moves (transformers' warm-up starts at 0)
    if kind == "constant" or total <= warmup:
        return 1.0
    progress = (n - warmup) / max(1, total - warmup)
    return max(0.0, 1.0 - progress) if kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))


@pytest.mark.parametrize("kind", ["constant", "linear", "cosine"])
@pytest.mark.parametrize("warmup,total", [(0, 10), (3, 10), (5, 5)])
def test_schedule_matches_its_closed_form(kind, warmup, total):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    sched = make_scheduler(opt, kind, warmup, total)
    for n in range(total):
        assert sched.get_last_lr()[0] == pytest.approx(0.5 * closed_form(kind, n, warmup, total),
                                                       rel=1e-12, abs=1e-15), (kind, n)
        opt.step()
        sched.step()


def test_first_update_is_not_wasted_and_state_round_trips():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_scheduler(opt, "cosine", 4, 20)
    assert sched.get_last_lr()[0] == pytest.approx(0.25)
    for _ in range(7):
        opt.step()
        sched.step()
    again = make_scheduler(opt, "cosine", 4, 20)
    again.load_state_dict(sched.state_dict())
    assert again.get_last_lr() == sched.get_last_lr()
    with pytest.raises(ValueError, match="unknown lr schedule"):
        make_scheduler(opt, "exponential", 0, 10)
