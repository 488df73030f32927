"""Advantages against float64 references written as plain loops, and a hand-computed example."""

import math
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grpo_plugins.grpo import advantages as A
from grpo_plugins.steps import step_end_tokens, token_offsets
from grpo_plugins.grpo import tiny


def ref_outcome(rewards, G, scale, eps):
    """Loop reference: group mean, unbiased group/batch std, NaN rewards excluded and given 0."""
    out = []
    valid_all = [r for r in rewards if not math.isnan(r)]
    mb = sum(valid_all) / len(valid_all)
    batch_std = math.sqrt(sum((r - mb) ** 2 for r in valid_all) / (len(valid_all) - 1))
    for g in range(0, len(rewards), G):
        grp = [r for r in rewards[g:g + G] if not math.isnan(r)]
        mean = sum(grp) / len(grp) if grp else 0.0
        std = math.sqrt(sum((r - mean) ** 2 for r in grp) / (len(grp) - 1)) if len(grp) > 1 else 0.0
        for r in rewards[g:g + G]:
            if math.isnan(r):
                out.append(0.0)
            elif scale == "group":
                out.append((r - mean) / (std + eps))
            elif scale == "batch":
                out.append((r - mean) / (batch_std + eps))
            else:
                out.append(r - mean)
    return out


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
@pytest.mark.parametrize("seed", range(3))
def test_outcome_matches_float64_reference(scale, seed):
    rng = random.Random(seed)
    G, n_groups = 6, 5
    rewards = [rng.choice([0.0, 1.0, rng.uniform(-2, 2), float("nan")]) for _ in range(G * n_groups)]
    got = A.outcome_advantages(torch.tensor(rewards, dtype=torch.float64), G, scale, eps=1e-4)
    want = ref_outcome(rewards, G, scale, 1e-4)
    assert torch.allclose(got, torch.tensor(want, dtype=torch.float64), atol=1e-12, rtol=1e-10)


def test_zero_variance_groups_give_zero_not_nan():
    r = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, float("nan")] + [float("nan")] * 3)
    for scale in ("group", "batch", "none"):
        adv = A.outcome_advantages(r, 4, scale)
        assert not torch.isnan(adv).any()
        assert torch.all(adv[:4] == 0) and torch.all(adv[8:] == 0)
        assert adv[5] > 0 > adv[4]
    assert A.zero_std_fraction(r, 4) == pytest.approx(2 / 3)


def ref_process(ends, values, G, T, eps):
    """Loop reference of DeepSeekMath 4.1.3: normalise a group's step rewards, sum those ending at or after t."""
    B = len(ends)
    out = [[0.0] * T for _ in range(B)]
    for g in range(0, B, G):
        vals = [v for i in range(g, g + G) for v in values[i]]
        if not vals:
            continue
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
        for i in range(g, g + G):
            for t in range(T):
                out[i][t] = sum((v - mean) / (std + eps) for e, v in zip(ends[i], values[i]) if e >= t)
    return out


@pytest.mark.parametrize("seed", range(3))
def test_process_matches_float64_reference(seed):
    rng = random.Random(seed)
    G, n_groups, T = 4, 3, 12
    ends, values = [], []
    for _ in range(G * n_groups):
        k = rng.randint(0, 4)
        ends.append(sorted(rng.sample(range(T), k)))
        values.append([rng.uniform(-1, 1) for _ in range(k)])
    got = A.process_advantages(ends, values, G, T, eps=1e-4)
    want = torch.tensor(ref_process(ends, values, G, T, 1e-4), dtype=torch.float64)
    assert torch.allclose(got, want, atol=1e-12)


def test_process_hand_computed_example():
    # one group of two completions; steps end at tokens 1 and 3 (first), 2 (second)
    # step rewards 1, 0 | 0.5 -> mean 0.5, std (unbiased) 0.5 -> normalised 1, -1 | 0 (eps ~ 0)
    adv = A.process_advantages([[1, 3], [2]], [[1.0, 0.0], [0.5]], group_size=2, length=5, eps=1e-12)
    # first: tokens 0-1 get 1 + (-1) = 0, tokens 2-3 get -1, token 4 (after the last step) 0
    assert adv[0].tolist() == pytest.approx([0.0, 0.0, -1.0, -1.0, 0.0])
    assert adv[1].tolist() == pytest.approx([0.0, 0.0, 0.0, 0.0, 0.0])
    adv = A.process_advantages([[1, 3], [2]], [[1.0, 0.0], [2.0]], group_size=2, length=4, eps=0.0)
    # rewards 1, 0, 2: mean 1, std 1 -> 0, -1 | 1
    assert adv[0].tolist() == pytest.approx([-1.0, -1.0, -1.0, -1.0])
    assert adv[1].tolist() == pytest.approx([1.0, 1.0, 1.0, 0.0])


def test_char_spans_map_to_tokens_through_offsets():
    tok = tiny.build_tokenizer()
    text = "<think>1+2=3, 4+5=9</think><answer>93</answer>"
    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    offsets = token_offsets(tok, ids, text)
    assert len(offsets) == len(ids) and offsets[-1] == (len(text), len(text))
    assert offsets[0] == (0, len("<think>"))  # the tag is one token
    step1_end = text.index(",")  # "<think>1+2=3" ends before the comma
    ends = step_end_tokens(offsets, [(0, step1_end), (step1_end + 2, len(text))])
    assert ends[0] == 5  # tokens: <think> 1 + 2 = 3 -> the step ends on token 5
    assert text[offsets[ends[0]][0]:offsets[ends[0]][1]] == "3"
    assert ends[1] == len(ids) - 2  # the last visible token (</answer>), not the EOS
    # the prefix-decoding fallback (used when re-tokenising differs) gives the same spans
    slow = token_offsets(_NotFast(tok), ids, text)
    assert slow == offsets


class _NotFast:
    def __init__(self, tok):
        self.tok, self.is_fast, self.all_special_ids = tok, False, tok.all_special_ids

    def decode(self, *a, **k):
        return self.tok.decode(*a, **k)


def test_combine_broadcasts_outcome_and_adds_process():
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    adv = A.combine(torch.tensor([2.0, -1.0]), torch.tensor([[0.5, 0.0, 9.0], [0.0, 1.0, 0.0]]), mask)
    assert adv.tolist() == [[2.5, 2.0, 0.0], [-1.0, 0.0, -1.0]]


# -- the batch: credit, the batch-wide scale over every process, span -> token ------------------


def ref_batch_scaled(rewards_here, rewards_everywhere, G, eps):
    """Loop reference of scale_rewards: batch across processes: group-centred here, divided by the
    unbiased std of every process's applicable rewards (0 with fewer than two)."""
    valid = [r for r in rewards_everywhere if not math.isnan(r)]
    if len(valid) > 1:
        m = sum(valid) / len(valid)
        std = math.sqrt(sum((r - m) ** 2 for r in valid) / (len(valid) - 1))
    else:
        std = 0.0
    out = []
    for g in range(0, len(rewards_here), G):
        grp = [r for r in rewards_here[g:g + G] if not math.isnan(r)]
        mean = sum(grp) / len(grp) if grp else 0.0
        out += [0.0 if math.isnan(r) else (r - mean) / (std + eps) for r in rewards_here[g:g + G]]
    return out


@pytest.mark.parametrize("seed", range(4))
def test_batch_scale_over_every_process_matches_float64_reference(seed):
    rng = random.Random(seed)
    G, world, groups = 4, 2, 3
    per_rank = [[rng.choice([0.0, 1.0, rng.uniform(-2, 2), float("nan")]) for _ in range(G * groups)]
                for _ in range(world)]
    everything = torch.tensor([r for rank in per_rank for r in rank], dtype=torch.float64)
    mask = torch.ones(G * groups, 3, dtype=torch.long)
    for rank in per_rank:
        r = torch.tensor(rank, dtype=torch.float64)
        credit = A.Credit(r, A.outcome_credit(r, G, "batch", 1e-4), None)
        got = A.token_advantages(credit, mask, "batch", 1e-4, batch_rewards=everything)
        want = torch.tensor(ref_batch_scaled(rank, everything.tolist(), G, 1e-4), dtype=torch.float32)
        assert torch.allclose(got, want[:, None].expand(-1, 3), atol=1e-6, rtol=1e-6)


def test_batch_std_has_no_nan_with_fewer_than_two_rewards():
    nan = float("nan")
    assert float(A.batch_std(torch.tensor([nan, 2.0, nan], dtype=torch.float64))) == 0.0
    assert float(A.batch_std(torch.tensor([1.0, nan, 3.0], dtype=torch.float64))) == pytest.approx(math.sqrt(2))
    r = torch.tensor([nan, 2.0, nan, nan], dtype=torch.float64)  # one reward in the whole batch
    credit = A.Credit(r, A.outcome_credit(r, 2, "batch"), None)
    assert A.token_advantages(credit, torch.ones(4, 2), "batch").abs().sum() == 0


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_credit_then_scale_is_bitwise_outcome_advantages(scale):
    """One batch: the credit path (batch scale applied last) gives exactly what outcome_advantages gives."""
    rng = random.Random(7)
    r = torch.tensor([rng.choice([0.0, 1.0, rng.uniform(-2, 2), float("nan")]) for _ in range(24)], dtype=torch.float64)
    mask = (torch.rand(24, 5, generator=torch.Generator().manual_seed(0)) > 0.3).long()
    process = torch.randn(24, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    credit = A.Credit(r, A.outcome_credit(r, 6, scale, 1e-4), process)
    direct = A.combine(A.outcome_advantages(r, 6, scale, 1e-4), process, mask)
    assert torch.equal(A.token_advantages(credit, mask, scale, 1e-4), direct)


def ref_step_ends(offsets, spans):
    """Definition: the last non-empty token that starts before the span's end, if it overlaps the span;
    else (a step no token reaches) the last token."""
    out = []
    for s, e in spans:
        before = [i for i, (a, b) in enumerate(offsets) if b > a and a < e]
        hit = before[-1] if before and offsets[before[-1]][1] > s else None
        out.append(max(len(offsets) - 1, 0) if hit is None else hit)
    return out


@st.composite
def tokens_and_spans(draw):
    widths = draw(st.lists(st.integers(0, 4), min_size=0, max_size=12))  # 0 = a special token
    offsets, pos = [], 0
    for w in widths:
        offsets.append((pos, pos + w))
        pos += w
    cuts = sorted(draw(st.lists(st.integers(0, pos + 6), min_size=0, max_size=8)))
    spans = [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]
    return offsets, spans


@settings(max_examples=300, deadline=None)
@given(tokens_and_spans())
def test_step_token_ends_matches_the_definition(case):
    offsets, spans = case
    assert A.step_token_ends(offsets, spans) == ref_step_ends(offsets, spans)


def test_step_token_ends_puts_a_cut_off_step_on_the_last_token():
    offsets = [(0, 2), (2, 4), (4, 4)]  # two tokens, then EOS
    assert A.step_token_ends(offsets, [(0, 3), (10, 12)]) == [1, 2]
    assert A.step_token_ends([], [(0, 1)]) == [0]


class _Result:
    def __init__(self, steps):
        self.steps = steps


class _Ro:
    def __init__(self, ids, text):
        self.completion_ids, self.text = ids, text


def test_process_credit_maps_spans_and_drops_non_finite_steps():
    tok = tiny.build_tokenizer()
    texts = ["1+2=3, 4+5=9", "7+1=8", "abc"]
    ros = [_Ro(tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id], t) for t in texts]
    results = [_Result([(0, 5, 1.0), (7, 12, 0.0), (20, 30, 0.5)]),  # the last step is past the text: cut off
               _Result([(0, 5, float("nan")), (0, 5, 1.0)]),  # a NaN step is left out
               _Result(None)]  # no steps at all
    got = A.process_credit(results, ros, tok, group_size=3, length=14, eps=1e-4, reduce="sum")
    ends, values = [], []
    for res, ro in zip(results, ros):
        steps = [s for s in (res.steps or []) if math.isfinite(s[2])]
        offsets = token_offsets(tok, ro.completion_ids, ro.text)
        ends.append(ref_step_ends(offsets, [(s, e) for s, e, _ in steps]))
        values.append([v for _, _, v in steps])
    assert ends[0] == [4, 11, len(ros[0].completion_ids) - 1] and ends[1] == [4]  # "3", "9", the EOS
    assert torch.equal(got, A.process_advantages(ends, values, 3, 14, 1e-4))
    assert got[2].abs().sum() == 0 and got[0].abs().sum() > 0
