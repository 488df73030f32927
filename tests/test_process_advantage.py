"""Length bias of DeepSeekMath's process advantage, against a float64 reference written from the
paper's formula (numpy, loops, no torch).

Under ``sum`` a token's advantage adds the normalised rewards of its own and every later step, so
the credit of a completion grows with its number of steps: two traces whose steps are all correct
get advantages in proportion to their step counts, and padding a trace with easy correct steps
raises its advantage. ``mean`` divides by the number of steps added, which removes that.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grpo_plugins.grpo.advantages import process_advantages


def reference(ends, rewards, G, T, eps=1e-4, reduce="sum"):
    """DeepSeekMath 4.1.3 in float64: normalise all step rewards of a group, sum (or average) the
    normalised rewards of the steps ending at or after each token."""
    B = len(ends)
    out = np.zeros((B, T), dtype=np.float64)
    for g in range(0, B, G):
        vals = np.array([v for i in range(g, g + G) for v in rewards[i]], dtype=np.float64)
        if vals.size == 0:
            continue
        mean = vals.mean()
        std = vals.std(ddof=1) if vals.size > 1 else 0.0
        for i in range(g, g + G):
            for t in range(T):
                later = [(v - mean) / (std + eps) for e, v in zip(ends[i], rewards[i]) if min(e, T - 1) >= t]
                if later:
                    out[i, t] = sum(later) / (len(later) if reduce == "mean" else 1)
    return out


def test_sum_favours_the_trace_with_more_correct_steps():
    # one group: A = 2 correct steps, B = 4 correct steps, C = 2 steps with a wrong one
    ends = [[1, 3], [1, 3, 5, 7], [1, 3]]
    rewards = [[1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [1.0, 0.0]]
    s = process_advantages(ends, rewards, 3, 8, reduce="sum").numpy()
    m = process_advantages(ends, rewards, 3, 8, reduce="mean").numpy()
    np.testing.assert_allclose(s, reference(ends, rewards, 3, 8), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m, reference(ends, rewards, 3, 8, reduce="mean"), rtol=1e-12, atol=1e-12)
    # the bias: both A and B are flawless, yet B's first token gets twice A's advantage under sum
    assert s[1, 0] == pytest.approx(2 * s[0, 0]) and s[0, 0] > 0
    # mean: equal credit for equally good steps, whatever their number
    assert m[1, 0] == pytest.approx(m[0, 0]) and m[0, 0] > 0
    assert m[2, 0] < m[0, 0] and s[2, 0] < s[0, 0]


def test_padding_with_easy_steps_pays_under_sum_only():
    base = [[2, 5], [2, 5]]
    good, bad = [1.0, 1.0], [0.0, 1.0]
    padded_ends = [[2, 5, 6, 7, 8], [2, 5]]  # the good trace adds three trivially correct steps
    s0 = process_advantages(base, [good, bad], 2, 10, reduce="sum").numpy()
    s1 = process_advantages(padded_ends, [good + [1.0] * 3, bad], 2, 10, reduce="sum").numpy()
    m0 = process_advantages(base, [good, bad], 2, 10, reduce="mean").numpy()
    m1 = process_advantages(padded_ends, [good + [1.0] * 3, bad], 2, 10, reduce="mean").numpy()
    assert s1[0, 0] > s0[0, 0] * 1.5  # more than half again as much credit for the padding
    assert m1[0, 0] == pytest.approx(m0[0, 0], rel=0.35)  # same order under mean
    assert abs(m1[0, 0] - m0[0, 0]) < abs(s1[0, 0] - s0[0, 0]) / 3


def test_mean_with_one_step_equals_sum():
    ends, rewards = [[3], [3]], [[1.0], [0.0]]
    np.testing.assert_array_equal(process_advantages(ends, rewards, 2, 5, reduce="sum").numpy(),
                                  process_advantages(ends, rewards, 2, 5, reduce="mean").numpy())


def test_unknown_reduce_is_refused():
    with pytest.raises(ValueError, match="sum | mean"):
        process_advantages([[0]], [[1.0]], 1, 2, reduce="max")


@st.composite
def groups(draw):
    G = draw(st.integers(1, 4))
    n_groups = draw(st.integers(1, 3))
    T = draw(st.integers(1, 12))
    ends, rewards = [], []
    for _ in range(G * n_groups):
        k = draw(st.integers(0, 5))
        e = sorted(draw(st.lists(st.integers(0, T + 2), min_size=k, max_size=k)))
        ends.append(e)
        rewards.append(draw(st.lists(st.floats(-3, 3, allow_nan=False), min_size=k, max_size=k)))
    return ends, rewards, G, T


@settings(max_examples=200, deadline=None)
@given(groups(), st.sampled_from(["sum", "mean"]))
def test_matches_the_float64_reference(case, reduce):
    ends, rewards, G, T = case
    got = process_advantages(ends, rewards, G, T, reduce=reduce).numpy()
    np.testing.assert_allclose(got, reference(ends, rewards, G, T, reduce=reduce), rtol=1e-9, atol=1e-9)
