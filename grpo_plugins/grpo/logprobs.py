"""Per-token log-probabilities of sampled completions (and their entropy), memory-lean in backward."""

from __future__ import annotations

import torch

from .decode import position_ids


class SampledLogProb(torch.autograd.Function):
    """log p(target) and entropy from logits [B, T+1, V] (the last position unused), in row chunks.

    ``logp = x[target] - logsumexp(x)`` with ``x = logits / temperature`` in float32. Only the
    logits the LM head already produced are kept for backward, which recomputes the softmax one
    chunk at a time; the plain formula keeps a float32 copy of every logit and builds full-size
    softmax and gather gradients, several times the logits' memory at real vocabulary sizes.
    """

    @staticmethod
    def forward(ctx, logits, targets, temperature: float, with_entropy: bool, chunk_elems: int):
        B, T = targets.shape
        rows = max(1, chunk_elems // max(1, T * logits.shape[-1]))
        logp = torch.empty(B, T, dtype=torch.float32, device=logits.device)
        lse = torch.empty_like(logp)
        entropy = torch.empty_like(logp) if with_entropy else None
        for s in range(0, B, rows):
            x = logits[s:s + rows, :T].float() / temperature
            lse[s:s + rows] = torch.logsumexp(x, dim=-1)
            logp[s:s + rows] = x.gather(-1, targets[s:s + rows, :, None]).squeeze(-1) - lse[s:s + rows]
            if with_entropy:
                entropy[s:s + rows] = lse[s:s + rows] - (torch.softmax(x, dim=-1) * x).sum(-1)
        ctx.save_for_backward(logits, targets, lse)
        ctx.temperature, ctx.rows = temperature, rows
        if entropy is None:
            return logp, torch.zeros(0, device=logits.device)
        ctx.mark_non_differentiable(entropy)
        return logp, entropy

    @staticmethod
    def backward(ctx, grad_logp, _grad_entropy):
        logits, targets, lse = ctx.saved_tensors
        B, T = targets.shape
        grad = torch.zeros_like(logits)
        for s in range(0, B, ctx.rows):
            g = grad_logp[s:s + ctx.rows, :, None].float()
            x = logits[s:s + ctx.rows, :T].float() / ctx.temperature
            d = torch.exp(x - lse[s:s + ctx.rows, :, None]).mul_(-g)  # d logp / d x = onehot - softmax
            d.scatter_add_(-1, targets[s:s + ctx.rows, :, None], g)
            grad[s:s + ctx.rows, :T] = (d / ctx.temperature).to(logits.dtype)
        return grad, None, None, None, None


def sampled_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0,
                     with_entropy: bool = False, chunk_elems: int = 1 << 23):
    """(log p(targets) [B, T] float32, entropy [B, T] or None) from logits [B, T+1, V]; see SampledLogProb."""
    logp, entropy = SampledLogProb.apply(logits, targets, float(temperature), with_entropy, chunk_elems)
    return logp, (entropy if with_entropy else None)


def token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_len: int,
                   temperature: float = 1.0, with_entropy: bool = False):
    """Log-probabilities of the last ``completion_len`` tokens of each row. input_ids: [B, P + T].

    Returns (logp [B, T] float32, entropy [B, T] or None). Logits are divided by the sampling
    temperature, so the ratio compares the distributions the tokens were sampled from.
    """
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
                   logits_to_keep=completion_len + 1, use_cache=False).logits
    return sampled_logprobs(logits, input_ids[:, -completion_len:], temperature, with_entropy)
