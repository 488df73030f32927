"""Rollouts: G sampled completions per prompt, and the per-token log-probabilities the loss needs.

``sample`` is a plain KV-cache sampling loop (temperature, top-k, top-p, stop at EOS) over one of
the decoders in ``decode.py``. It does the same work as ``model.generate`` without its per-token
bookkeeping, which dominates on small models; ``backend: generate`` in the config uses
transformers' ``generate`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .decode import decoder_for, position_ids
from ..rewards import Sample


@dataclass
class Rollout(Sample):
    """A scored completion: the Sample the rewards saw plus its rewards, advantage and token data."""

    prompt_text: str = ""  # the text the model continued (chat template applied), not just message contents
    truncated: bool = False
    reward: float | None = None
    rewards: dict[str, float | None] = field(default_factory=dict)
    steps: dict[str, list] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    advantage: float = 0.0  # mean per-token advantage


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set logits outside the top-k / nucleus top-p set to -inf. logits: [B, V]."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, idx = torch.sort(logits, descending=True, dim=-1)
        probs = torch.softmax(sorted_logits, dim=-1)
        drop = probs.cumsum(-1) - probs > top_p  # keep the smallest set whose mass reaches top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, idx, sorted_logits)
    return logits


@torch.inference_mode()
def sample(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int, eos_id: int,
           pad_id: int, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
           greedy: bool = False, compact_at: float = 0.25, lean: bool = True) -> torch.Tensor:
    """Sample completions for left-padded prompts. input_ids, attention_mask: [B, P].

    Returns completion ids [B, T] (T <= max_new_tokens), padded with pad_id after each EOS.
    Finished rows leave the batch (their KV cache rows are dropped) once they make up
    ``compact_at`` of it, so the tail of a generation only computes the rows still running.
    ``lean`` uses ``decode.LeanDecoder`` when the model is one it supports.
    """
    B, device = input_ids.shape[0], input_ids.device
    decoder = decoder_for(model, max_new_tokens, lean=lean)
    logits = decoder.prefill(input_ids, attention_mask)
    result = torch.full((B, max_new_tokens), pad_id, dtype=torch.long, device=device)
    rows = torch.arange(B, device=device)  # which output row each batch row is
    done = torch.zeros(B, dtype=torch.bool, device=device)  # per batch row
    length = 0
    for t in range(max_new_tokens):
        if greedy:
            tok = logits.argmax(-1)
        else:
            probs = torch.softmax(filter_logits(logits / temperature, top_k, top_p), dim=-1)
            tok = torch.multinomial(probs, 1).squeeze(-1)
        tok = torch.where(done, torch.full_like(tok, pad_id), tok)
        result[rows, t] = tok
        length = t + 1
        done = done | (tok == eos_id)
        if t == max_new_tokens - 1 or bool(done.all()):
            break
        if decoder.can_keep and int(done.sum()) >= compact_at * done.numel():
            keep = (~done).nonzero().squeeze(-1)
            decoder.keep(keep)
            rows, tok, done = rows[keep], tok[keep], done[keep]
        logits = decoder.step(tok)
    return result[:, :length]


@torch.inference_mode()
def hf_generate(model, input_ids, attention_mask, max_new_tokens, eos_id, pad_id, temperature=1.0,
                top_k=0, top_p=1.0, greedy=False) -> torch.Tensor:
    """The same contract as ``sample`` through transformers' ``generate``."""
    out = model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
                         do_sample=not greedy, temperature=temperature if not greedy else None,
                         top_k=top_k if (top_k and not greedy) else None, top_p=top_p if not greedy else None,
                         eos_token_id=eos_id, pad_token_id=pad_id)
    return out[:, input_ids.shape[1]:]


def completion_mask(completion_ids: torch.Tensor, eos_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask [B, T] with 1 up to and including the first EOS, truncated [B] = no EOS at all)."""
    is_eos = completion_ids == eos_id
    has_eos = is_eos.any(-1)
    first = torch.where(has_eos, is_eos.int().argmax(-1), torch.full_like(has_eos, completion_ids.shape[1], dtype=torch.long))
    idx = torch.arange(completion_ids.shape[1], device=completion_ids.device)[None]
    return (idx <= first[:, None]).long(), ~has_eos


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
