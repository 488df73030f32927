"""The GRPO policy loss: token-level clipped ratio plus beta * KL_k3 to a frozen reference.

Shapes: B completions in the micro-batch, T completion tokens (padded). All inputs are [B, T]:
    logp      log-probabilities of the sampled tokens under the current policy (with grad)
    old_logp  the same under the policy that generated them (num_iterations > 1) or None (= logp,
              detached: ratio 1, gradient of the plain policy-gradient estimator)
    ref_logp  the same under the reference model, or None when beta == 0
    adv       per-token advantages (outcome advantages broadcast over tokens, plus process ones)
    mask      1 for completion tokens that count, 0 for padding

Normalisation (``loss_type``, TRL's meanings), for a rollout batch split into micro-batches:
    grpo     mean over sequences of (sum over the sequence's tokens / its length)
    bnpo     sum over the micro-batch's tokens / their number, averaged over micro-batches
    dr_grpo  sum over tokens / (number of sequences x max_completion_length, i.e. max_new_tokens)
    dapo     sum over tokens / number of tokens in the whole rollout batch
The ``norm`` argument carries the whole batch's counts so that summing the micro-batch losses gives
the loss of the whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Norm:
    """Whole-batch counts the loss divides by (see the module docstring)."""

    sequences: float  # completions in the rollout batch (this process)
    tokens: float  # unmasked completion tokens in the rollout batch (this process)
    micro_batches: int = 1
    max_length: int = 1  # max_completion_length (rollout.max_new_tokens), for dr_grpo


def k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """KL(policy || ref) per token, Schulman's k3 estimator: exp(ref - logp) - (ref - logp) - 1 >= 0."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor | None, ref_logp: torch.Tensor | None,
              adv: torch.Tensor, mask: torch.Tensor, *, beta: float = 0.0, epsilon: float = 0.2,
              epsilon_high: float | None = None, loss_type: str = "dapo",
              norm: Norm | None = None, weights: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Returns (scalar loss of this micro-batch, detached metric sums: see ``reduce_metrics``).

    ``weights`` [B, T] or [B, 1] (optional) multiply each token's loss: the sampler/trainer
    importance-sampling ratio under vLLM, applied to the whole per-token loss as TRL does."""
    epsilon_high = epsilon if epsilon_high is None else epsilon_high
    mask = mask.to(logp.dtype)
    if adv.dim() == 1:
        adv = adv[:, None].expand_as(logp)
    if norm is None:
        norm = Norm(sequences=logp.shape[0], tokens=float(mask.sum()), max_length=logp.shape[1])
    old = logp.detach() if old_logp is None else old_logp
    ratio = torch.exp(logp - old)
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + epsilon_high)
    per_token = -torch.min(ratio * adv, clipped * adv)
    kl = None
    if beta and ref_logp is not None:
        kl = k3(logp, ref_logp)
        per_token = per_token + beta * kl
    if weights is not None:
        per_token = per_token * weights
    masked = per_token * mask
    if loss_type == "grpo":
        loss = (masked.sum(-1) / mask.sum(-1).clamp(min=1)).sum() / norm.sequences
    elif loss_type == "bnpo":
        loss = masked.sum() / mask.sum().clamp(min=1) / norm.micro_batches
    elif loss_type == "dr_grpo":
        loss = masked.sum() / (norm.sequences * norm.max_length)
    elif loss_type == "dapo":
        loss = masked.sum() / max(norm.tokens, 1.0)
    else:
        raise ValueError(f"loss_type must be grpo | bnpo | dr_grpo | dapo, got {loss_type!r}")

    with torch.no_grad():
        low = ((ratio < 1 - epsilon) & (adv < 0)).to(mask.dtype) * mask
        high = ((ratio > 1 + epsilon_high) & (adv > 0)).to(mask.dtype) * mask
        metrics = {
            "tokens": mask.sum(),
            "clip_low": low.sum(),
            "clip_high": high.sum(),
            "kl": (kl * mask).sum() if kl is not None else torch.zeros(()),
        }
    return loss, metrics


def reduce_metrics(sums: dict[str, float]) -> dict[str, float]:
    """Token sums accumulated over micro-batches -> TRL-named means."""
    n = max(sums.get("tokens", 0.0), 1.0)
    low, high = sums.get("clip_low", 0.0) / n, sums.get("clip_high", 0.0) / n
    return {
        "kl": sums.get("kl", 0.0) / n,
        "clip_ratio/low_mean": low,
        "clip_ratio/high_mean": high,
        "clip_ratio/region_mean": low + high,
    }
