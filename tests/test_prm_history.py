"""History share of sampled batches: every batch within one item of the share, the last one included."""

import math

import pytest
from hypothesis import given, settings, strategies as st

from grpo_prm.history import HistorySampler, mix


def history_in(batch, n_new):
    return sum(i >= n_new for i in batch)


@pytest.mark.parametrize("share,batch_size", [(0.1, 16), (0.1, 7), (0.25, 8), (0.5, 10), (0.0, 8)])
def test_history_share_of_batches_matches_the_option(share, batch_size):
    sampler = HistorySampler(n_new=500, n_history=300, batch_size=batch_size, history_share=share, seed=0)
    batches = list(sampler)
    full = [b for b in batches if len(b) == batch_size]
    assert len(full) >= len(batches) - 1
    hist_counts = [history_in(b, 500) for b in full]
    for k in hist_counts:
        assert math.floor(batch_size * share) <= k <= math.ceil(batch_size * share)
    total = sum(hist_counts) / (len(full) * batch_size)
    assert abs(total - share) <= 1 / (len(full) * batch_size)


def test_the_short_last_batch_keeps_the_share():
    # 20 new items, batches of 24 at share 0.5: 12 new + 12 old, then 8 new left. The old sampler gave
    # the last batch a full batch's 12 history items (12 of 20 is 0.6; 16 of 24 for other sizes).
    batches = list(HistorySampler(n_new=20, n_history=100, batch_size=24, history_share=0.5, seed=0))
    assert [(len(b), history_in(b, 20)) for b in batches] == [(24, 12), (16, 8)]


@settings(max_examples=300, deadline=None)
@given(n_new=st.integers(1, 300), n_history=st.integers(0, 200), batch_size=st.integers(1, 64),
       share=st.floats(0, 0.9), seed=st.integers(0, 2**31))
def test_every_batch_is_within_one_item_of_the_share_and_new_items_are_used_once(n_new, n_history, batch_size,
                                                                                share, seed):
    sampler = HistorySampler(n_new, n_history, batch_size, share, seed)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    s = share if n_history else 0.0
    for b in batches:
        assert 1 <= len(b) <= batch_size
        assert abs(history_in(b, n_new) - s * len(b)) <= 1 + 1e-9, (b, s)
    assert sorted(i for b in batches for i in b if i < n_new) == list(range(n_new))
    hist = [i for b in batches for i in b if i >= n_new]
    if hist:  # full passes over the history: no item drawn twice more often than another
        counts = [hist.count(n_new + i) for i in range(n_history)]
        assert max(counts) - min(counts) <= 1


def test_every_new_item_is_used_once_per_epoch_and_history_is_spread():
    batches = list(HistorySampler(n_new=100, n_history=20, batch_size=10, history_share=0.1, seed=1))
    new = sorted(i for b in batches for i in b if i < 100)
    hist = [i for b in batches for i in b if i >= 100]
    assert new == list(range(100))
    assert len(hist) == sum(len(b) == 10 for b in batches)  # one per batch of 10; none with 1 new item
    assert len(set(hist)) == min(len(hist), 20)  # a full pass over history before any repeats


def test_without_history_every_item_is_new():
    batches = mix(list("abcdefg"), [], batch_size=3, history_share=0.1)
    assert sorted(x for b in batches for x in b) == list("abcdefg")


def test_share_must_be_below_one():
    with pytest.raises(ValueError, match="history_share"):
        HistorySampler(10, 10, 4, history_share=1.0)
