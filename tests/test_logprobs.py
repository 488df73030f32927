"""Sampled-token log-probabilities and entropy against a float64 reference of the formula."""

from __future__ import annotations

import pytest
import torch

from grpo_plugins.grpo.logprobs import sampled_logprobs


def _reference(logits, targets, temperature):
    x = logits[:, :-1].double() / temperature
    logp = x.gather(-1, targets[..., None]).squeeze(-1) - torch.logsumexp(x, -1)
    p = torch.softmax(x, -1)
    return logp, -(p * torch.log_softmax(x, -1)).sum(-1)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("chunk_elems", [1, 10_000])  # one row per chunk, and all rows at once
def test_values_and_gradient_match_the_formula(temperature, chunk_elems):
    g = torch.Generator().manual_seed(0)
    B, T, V = 3, 5, 11
    logits = (torch.randn(B, T + 1, V, generator=g, dtype=torch.float64) * 3).requires_grad_(True)
    targets = torch.randint(V, (B, T), generator=g)
    weights = torch.randn(B, T, generator=g, dtype=torch.float64)
    ref = logits.detach().clone().requires_grad_(True)
    want_logp, want_ent = _reference(ref, targets, temperature)
    (want_logp * weights).sum().backward()
    logp, ent = sampled_logprobs(logits, targets, temperature, with_entropy=True, chunk_elems=chunk_elems)
    assert logp.dtype == torch.float32
    assert torch.allclose(logp.double(), want_logp.detach(), atol=1e-5, rtol=0)
    assert torch.allclose(ent.double(), want_ent.detach(), atol=1e-5, rtol=0)
    (logp.double() * weights).sum().backward()
    assert torch.allclose(logits.grad, ref.grad, atol=1e-5, rtol=0)
    assert torch.all(logits.grad[:, -1] == 0)  # the last position predicts nothing sampled


def test_float64_gradcheck():
    """Backward is the exact derivative of forward (finite differences in float64)."""
    from grpo_plugins.grpo.logprobs import SampledLogProb

    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(6, (2, 3), generator=g)
    # forward rounds through float32, so compare at float32 precision
    assert torch.autograd.gradcheck(lambda x: SampledLogProb.apply(x, targets, 0.9, False, 8)[0].double(), (logits,),
                                    eps=1e-3, atol=1e-3, rtol=1e-3)


def test_bf16_logits_keep_their_dtype_and_memory():
    """bf16 logits give float32 log-probs and a bf16 gradient; without entropy none is returned."""
    logits = torch.randn(2, 4, 7).bfloat16().requires_grad_(True)
    targets = torch.randint(7, (2, 3))
    logp, ent = sampled_logprobs(logits, targets)
    assert ent is None and logp.dtype == torch.float32
    logp.sum().backward()
    assert logits.grad.dtype == torch.bfloat16
    want, _ = _reference(logits.detach().float(), targets, 1.0)
    assert torch.allclose(logp.double(), want, atol=1e-5)
