"""The GRPO loss against a float64 reference written token by token, for every loss_type and mu > 1."""

import math

import pytest
import torch

from grpo_plugins.grpo.loss import Norm, grpo_loss, k3, reduce_metrics


def ref_loss(logp, old, ref, adv, mask, beta, eps_lo, eps_hi, loss_type, micro=1, n_tokens=None, max_len=None):
    """Token-by-token float64 reference of the clipped objective and its normalisations."""
    B, T = len(logp), len(logp[0])
    per_seq, total, count = [], 0.0, 0
    for i in range(B):
        s, n = 0.0, 0
        for t in range(T):
            if not mask[i][t]:
                continue
            ratio = math.exp(logp[i][t] - old[i][t])
            a = adv[i][t]
            term = -min(ratio * a, min(max(ratio, 1 - eps_lo), 1 + eps_hi) * a)
            if beta:
                d = ref[i][t] - logp[i][t]
                term += beta * (math.exp(d) - d - 1)
            s += term
            n += 1
        per_seq.append(s / max(n, 1))
        total += s
        count += n
    if loss_type == "grpo":
        return sum(per_seq) / B
    if loss_type == "bnpo":
        return total / max(count, 1) / micro
    if loss_type == "dr_grpo":
        return total / (B * max_len)
    return total / (n_tokens if n_tokens is not None else count)


def random_batch(seed, B=5, T=7, mu_gt_1=True):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(B, T, generator=g, dtype=torch.float64) * 3
    # mu > 1: the old policy differs, so ratios leave [1 - eps, 1 + eps] and clipping is exercised
    old = logp + (torch.randn(B, T, generator=g, dtype=torch.float64) * 0.4 if mu_gt_1 else 0)
    ref = logp + torch.randn(B, T, generator=g, dtype=torch.float64) * 0.3
    adv = torch.randn(B, T, generator=g, dtype=torch.float64)
    mask = (torch.rand(B, T, generator=g) > 0.25).long()
    mask[:, 0] = 1
    return logp, old, ref, adv, mask


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
@pytest.mark.parametrize("seed", range(2))
def test_loss_and_gradient_match_reference(loss_type, beta, seed):
    logp, old, ref, adv, mask = random_batch(seed)
    logp = logp.clone().requires_grad_(True)
    loss, _ = grpo_loss(logp, old, ref, adv, mask, beta=beta, epsilon=0.2, epsilon_high=0.28, loss_type=loss_type)
    L = lambda lp: ref_loss(lp, old.tolist(), ref.tolist(), adv.tolist(), mask.tolist(), beta, 0.2, 0.28,  # noqa: E731
                            loss_type, max_len=logp.shape[1])
    want = L(logp.detach().tolist())
    assert loss.dtype == torch.float64
    assert float(loss.detach()) == pytest.approx(want, rel=1e-12, abs=1e-14)
    # gradient: central finite differences of the reference
    loss.backward()
    h = 1e-6
    base = logp.detach().tolist()
    for i, t in [(0, 0), (1, 3), (4, 6), (2, 2)]:
        up = [row[:] for row in base]
        dn = [row[:] for row in base]
        up[i][t] += h
        dn[i][t] -= h
        fd = (L(up) - L(dn)) / (2 * h)
        assert float(logp.grad[i, t]) == pytest.approx(fd, abs=1e-6)


def test_mu_1_is_the_policy_gradient_with_ratio_one():
    logp, _, _, adv, mask = random_batch(3, mu_gt_1=False)
    logp = logp.clone().requires_grad_(True)
    loss, m = grpo_loss(logp, None, None, adv, mask, loss_type="dapo")
    loss.backward()
    # d/dlogp of -ratio * A at ratio 1 is -A / n_tokens, for every unmasked token
    assert torch.allclose(logp.grad, -adv * mask / mask.sum())
    assert float(loss.detach()) == pytest.approx(float(-(adv * mask).sum() / mask.sum()))
    assert float(m["clip_low"]) == 0 and float(m["clip_high"]) == 0


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
def test_micro_batches_sum_to_the_whole_batch_loss(loss_type):
    logp, old, ref, adv, mask = random_batch(7, B=6)
    whole, _ = grpo_loss(logp, old, ref, adv, mask, beta=0.04, loss_type=loss_type)
    norm = Norm(sequences=6, tokens=float(mask.sum()), micro_batches=3, max_length=logp.shape[1])
    parts = [grpo_loss(logp[s:s + 2], old[s:s + 2], ref[s:s + 2], adv[s:s + 2], mask[s:s + 2], beta=0.04,
                       loss_type=loss_type, norm=norm)[0] for s in (0, 2, 4)]
    assert float(sum(parts)) == pytest.approx(float(whole), rel=1e-12)


def test_bnpo_averages_micro_batch_token_means():
    logp, old, ref, adv, mask = random_batch(8, B=4)
    norm = Norm(sequences=4, tokens=float(mask.sum()), micro_batches=2, max_length=logp.shape[1])
    parts = [float(grpo_loss(logp[s:s + 2], old[s:s + 2], None, adv[s:s + 2], mask[s:s + 2], loss_type="bnpo",
                             norm=norm)[0]) for s in (0, 2)]
    want = sum(ref_loss(logp[s:s + 2].tolist(), old[s:s + 2].tolist(), None, adv[s:s + 2].tolist(),
                        mask[s:s + 2].tolist(), 0.0, 0.2, 0.2, "bnpo", micro=2) for s in (0, 2))
    assert sum(parts) == pytest.approx(want, rel=1e-12)


def test_k3_is_zero_at_the_reference_and_positive_elsewhere():
    x = torch.randn(50, dtype=torch.float64)
    assert torch.all(k3(x, x) == 0)
    y = x + torch.randn(50, dtype=torch.float64)
    assert torch.all(k3(x, y) > 0)


def test_clip_metrics_count_the_right_tokens():
    logp = torch.zeros(1, 4, dtype=torch.float64)
    old = torch.log(torch.tensor([[2.0, 0.5, 2.0, 0.5]], dtype=torch.float64))  # ratios .5, 2, .5, 2
    adv = torch.tensor([[-1.0, 1.0, 1.0, -1.0]], dtype=torch.float64)
    mask = torch.ones(1, 4, dtype=torch.long)
    _, m = grpo_loss(logp, old, None, adv, mask, epsilon=0.2)
    r = reduce_metrics({k: float(v) for k, v in m.items()})
    # token 0: ratio .5 < .8 with A < 0 -> low; token 1: ratio 2 > 1.2 with A > 0 -> high; others unclipped
    assert r["clip_ratio/low_mean"] == 0.25 and r["clip_ratio/high_mean"] == 0.25
    assert r["clip_ratio/region_mean"] == 0.5
