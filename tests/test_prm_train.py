"""PRM training: labels only at step ends, the soft cross-entropy against a float64 reference,
held-out metrics, and a tiny model that learns a step pattern."""

import itertools
import random

import pytest
import torch

from grpo_prm.data import PRMExample, from_trl
from grpo_prm.metrics import roc_auc, step_accuracy
from grpo_prm.model import ProcessRewardModel, StepFormat
from grpo_prm.tiny import build_tiny_prm, char_tokenizer
from grpo_prm.train import IGNORE, PRMTrainOptions, make_batch, step_loss, targets_for, train_prm


@pytest.fixture(scope="module")
def tiny_prm(tmp_path_factory):
    return build_tiny_prm(tmp_path_factory.mktemp("prm") / "init", hidden_size=32, layers=1, heads=2)


def test_targets_sit_only_on_step_end_tokens(tiny_prm):
    prm = ProcessRewardModel.load(tiny_prm)
    ex = from_trl({"prompt": "Q: 1+2?\n", "completions": ["1+2=3", "so 3"], "labels": [True, False]}, "\n\n")
    enc = prm.encode(ex.prompt, ex.completion, ex.spans)
    batch = make_batch(prm, [(enc, targets_for(ex, PRMTrainOptions()))])
    labelled = (batch.targets[0] != IGNORE).nonzero().flatten().tolist()
    # char tokenizer (+ no specials): step ends are the chars "3" of "1+2=3" and "3" of "so 3"
    text = ex.prompt + ex.completion
    assert labelled == [text.index("1+2=3") + 4, len(text) - 1]
    assert batch.targets[0, labelled].tolist() == [1.0, 0.0]


def test_hard_labels_mean_any_correct_continuation_and_soft_labels_pass_through():
    ex = PRMExample("p", "a\n\nb\n\nc", [(0, 1), (3, 4), (6, 7)], [0.75, 0.25, 0.0])
    assert targets_for(ex, PRMTrainOptions(labels="soft")) == [0.75, 0.25, 0.0]
    assert targets_for(ex, PRMTrainOptions(labels="hard")) == [1.0, 1.0, 0.0]
    assert targets_for(ex, PRMTrainOptions(labels="hard", hard_threshold=0.5)) == [1.0, 0.0, 0.0]


def test_step_loss_matches_a_float64_reference_and_ignores_other_tokens():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 2, requires_grad=True)
    targets = torch.full((2, 5), IGNORE)
    targets[0, 2], targets[1, 0], targets[1, 4] = 1.0, 0.25, 0.0
    loss, metrics = step_loss(logits, targets)
    ref, n = 0.0, 0
    l64 = logits.detach().double()
    for b, t in [(0, 2), (1, 0), (1, 4)]:
        lp = l64[b, t].log_softmax(-1)
        y = float(targets[b, t])
        ref += -(y * lp[1] + (1 - y) * lp[0])
        n += 1
    assert float(loss.detach()) == pytest.approx(float(ref / n), rel=1e-6)
    assert metrics["steps"] == 3
    loss.backward()
    grad_norm = logits.grad.norm(dim=-1)
    mask = targets != IGNORE
    assert torch.all(grad_norm[~mask] == 0)  # no loss anywhere but step ends
    assert torch.all(grad_norm[mask] > 0)


def test_auc_matches_brute_force_pair_counting_with_ties():
    rng = random.Random(3)
    scores = [rng.choice([0.1, 0.3, 0.3, 0.5, 0.9]) for _ in range(40)]
    labels = [rng.random() < 0.4 for _ in range(40)]
    pairs = [(p, n) for p, n in itertools.product(range(40), repeat=2) if labels[p] and not labels[n]]
    ref = sum(1.0 if scores[p] > scores[n] else 0.5 if scores[p] == scores[n] else 0.0 for p, n in pairs) / len(pairs)
    assert roc_auc(scores, labels) == pytest.approx(ref, abs=1e-12)
    assert roc_auc([0.2, 0.4], [1, 1]) is None
    assert step_accuracy([0.9, 0.2, 0.6], [1, 1, 0]) == pytest.approx(1 / 3)


def pattern_examples(n, seed):
    """Steps are 'ok' or 'no': the label is whether the step says ok (learnable from one token)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randint(2, 4)
        good = [rng.random() < 0.5 for _ in range(k)]
        out.append(from_trl({"prompt": "go\n", "completions": [("ok" if g else "no") + " x" for g in good],
                             "labels": good}, "\n\n"))
    return out


def test_tiny_prm_learns_a_step_pattern_and_reports_heldout_metrics(tiny_prm, tmp_path):
    metrics = train_prm(tiny_prm, tmp_path / "out", pattern_examples(200, 0),
                        PRMTrainOptions(epochs=4, batch_size=16, learning_rate=3e-3),
                        eval_examples=pattern_examples(40, 1))
    assert metrics["eval/step_accuracy"] > 0.95
    assert metrics["eval/auc"] > 0.95
    assert metrics["train/loss_last"] < metrics["train/loss_first"]
    prm = ProcessRewardModel.load(tmp_path / "out")
    assert prm.step_format == StepFormat()  # the step format travels with the model
    [[(s0, e0, v0), (s1, e1, v1)]] = prm.score_texts(["go\n"], ["ok x\n\nno x"])
    assert (s0, e0, s1, e1) == (0, 4, 6, 10)
    assert v0 > 0.5 > v1


def test_char_tokenizer_offsets_are_exact():
    enc = char_tokenizer()("ab\n\nc", return_offsets_mapping=True)
    assert enc["offset_mapping"] == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]


def test_retraining_batches_carry_the_history_share():
    from grpo_prm.train import plan_batches

    o = PRMTrainOptions(epochs=2, batch_size=10)
    plan = plan_batches([5] * 140, n_history=50, o=o, history_share=0.1, rng=random.Random(0))
    full = [b for b in plan if len(b) == 10]
    assert all(sum(i >= 90 for i in b) == 1 for b in full)  # 10% of every batch is history
    new_seen = sorted(i for b in plan for i in b if i < 90)
    assert new_seen == sorted(list(range(90)) * 2)  # two passes over the new data
