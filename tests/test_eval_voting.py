"""The voting API: the math reward's answer keys and equality (1/2 = 0.5 = \\frac{1}{2}), which
never raises on any text, and a third-party reward taking part through the same two methods."""

from hypothesis import given, settings
from hypothesis import strategies as st

from grpo_math import voting
from grpo_math.equivalence import CheckOptions
from grpo_math.reward import MathReward

from grpo_plugins import Reward, RewardResult, Sample
from grpo_plugins.rewards import can_vote

OPTS = CheckOptions()


def _scored(texts, gold="1/2"):
    reward = MathReward({"workers": 1})
    samples = [Sample(prompt="q", completion=t, columns={"answer": gold}) for t in texts]
    try:
        results = reward.score(samples)
        return reward, [reward.answer_key(s, r) for s, r in zip(samples, results)]
    finally:
        reward.close()


def test_math_answer_keys_come_from_the_extracted_answer():
    _, keys = _scored(["<answer>0.5</answer>", "so \\boxed{\\frac{1}{2}}", "The final answer is $1/2$.",
                       "I am not sure", "<answer> 7 </answer>"])
    assert keys == ["0.5", "\\frac{1}{2}", "1/2", None, "7"]


def test_math_same_answer_groups_equal_values_only():
    reward = MathReward({"workers": 1})
    try:
        assert reward.same_answer("1/2", "0.5") and reward.same_answer("\\frac{1}{2}", "0.5")
        assert reward.same_answer("0.5", "1/2")  # symmetric even though the check is gold-first
        assert reward.same_answer("1.732", "\\sqrt{3}") and reward.same_answer("\\sqrt{3}", "1.732")
        assert not reward.same_answer("1/2", "0.6") and not reward.same_answer("62", "72")
        # needs sympy: decided in the reward's worker pool
        assert reward.same_answer("x^2-1", "(x-1)(x+1)")
        assert not reward.same_answer("x^2+1", "(x-1)(x+1)")
    finally:
        reward.close()
    assert can_vote(reward)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_same_answer_never_raises_and_is_symmetric_and_reflexive(a, b):
    ab = voting.same_answer(a, b, OPTS)  # in-process only (pool=None): what sympy would decide is False
    assert isinstance(ab, bool)
    assert ab == voting.same_answer(b, a, OPTS)
    assert voting.same_answer(a, a, OPTS)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["status", "extracted", "gold"]),
                       st.one_of(st.none(), st.text(max_size=20), st.integers())))
def test_answer_key_never_raises_on_any_info(info):
    key = voting.answer_key(info)
    assert key is None or (isinstance(key, str) and key == key.strip())


class WordReward(Reward):
    """A third-party verifier: the last word, compared case-insensitively."""

    name = "last_word"

    def score(self, samples):
        words = [s.text.split()[-1] for s in samples]
        return [RewardResult(float(w.lower() == s.columns["answer"]), info={"word": w}) for w, s in zip(words, samples)]

    def answer_key(self, sample, result):
        return result.info["word"]

    def same_answer(self, a, b):
        return a.lower() == b.lower()


def test_a_third_party_reward_votes_through_the_same_api():
    from grpo_plugins.grpo.evaluate import answer_classes

    r = WordReward()
    samples = [Sample("q", t, columns={"answer": "paris"}) for t in ["it is Paris", "paris", "PARIS", "Rome", "rome"]]
    results = r.score(samples)
    keys = [r.answer_key(s, x) for s, x in zip(samples, results)]
    assert answer_classes(keys, r.same_answer) == [0, 0, 0, 1, 1]
    assert can_vote(r) and not can_vote(_NoVote())


class _NoVote(Reward):
    name = "novote"

    def score(self, samples):
        return [RewardResult(0.0) for _ in samples]
