"""History share of sampled batches: each batch within one item of the share, the total exact."""

import math

import pytest

from grpo_plugins.cycle.history import HistorySampler, mix


@pytest.mark.parametrize("share,batch_size", [(0.1, 16), (0.1, 7), (0.25, 8), (0.5, 10), (0.0, 8)])
def test_history_share_of_batches_matches_the_option(share, batch_size):
    sampler = HistorySampler(n_new=500, n_history=300, batch_size=batch_size, history_share=share, seed=0)
    batches = list(sampler)
    full = [b for b in batches if len(b) == batch_size]
    assert len(full) >= len(batches) - 1
    hist_counts = [sum(i >= 500 for i in b) for b in full]
    for k in hist_counts:
        assert math.floor(batch_size * share) <= k <= math.ceil(batch_size * share)
    total = sum(hist_counts) / (len(full) * batch_size)
    assert abs(total - share) <= 1 / (len(full) * batch_size)


def test_every_new_item_is_used_once_per_epoch_and_history_is_spread():
    batches = list(HistorySampler(n_new=100, n_history=20, batch_size=10, history_share=0.1, seed=1))
    new = sorted(i for b in batches for i in b if i < 100)
    hist = [i for b in batches for i in b if i >= 100]
    assert new == list(range(100))
    assert len(hist) == len(batches)  # one per batch of 10
    assert len(set(hist)) == min(len(hist), 20)  # a full pass over history before any repeats


def test_without_history_every_item_is_new():
    batches = mix(list("abcdefg"), [], batch_size=3, history_share=0.1)
    assert sorted(x for b in batches for x in b) == list("abcdefg")


def test_share_must_be_below_one():
    with pytest.raises(ValueError, match="history_share"):
        HistorySampler(10, 10, 4, history_share=1.0)
