"""The one rollout path: prompts -> completion ids on the policy's device, for training, evaluation
and the cycle's step labeller (``Generator``), through the built-in sampler, transformers'
``generate`` or a colocated vLLM engine.

``sample`` is a plain KV-cache sampling loop (temperature, top-k, top-p, stop at EOS) over one of
the decoders in ``decode.py``. It does the same work as ``model.generate`` without its per-token
bookkeeping, which dominates on small models; ``backend: generate`` in the config uses
transformers' ``generate`` instead.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from typing import Any

import torch

from .decode import decoder_for
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


class Generator:
    """Prompts -> completions with one rollout config (backend, sampling, batch size) on one device.

    ``model`` is passed per call, so the trainer, its evaluation and the step labeller share this
    path with whatever policy they hold (LoRA applied, unwrapped from DDP). With a vLLM engine the
    policy's weights are pushed first whenever ``version`` changed.
    """

    def __init__(self, tokenizer, rollout, data, device, autocast=contextlib.nullcontext, vllm=None):
        self.tokenizer, self.rollout, self.data, self.device = tokenizer, rollout, data, device
        self.autocast, self.vllm = autocast, vllm

    def encode(self, prompts: list[Any]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """Prompts (strings or chat messages) -> left-padded ids [B, P], mask [B, P], prompt texts."""
        from .data import prompt_text

        d = self.data
        texts = [prompt_text(p, self.tokenizer, d.chat_template, d.system_prompt) for p in prompts]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False,
                             truncation=d.max_prompt_tokens is not None, max_length=d.max_prompt_tokens)
        return enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device), texts

    def generate(self, model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, max_new_tokens: int,
                 greedy: bool = False, version: int = 0) -> torch.Tensor:
        """Completion ids [B, T] for left-padded prompts, padded after each EOS."""
        r, tok = self.rollout, self.tokenizer
        if self.vllm is not None:
            self.vllm.sync(model, version)
            return self.vllm.generate(prompt_ids, prompt_mask, max_new_tokens, tok.eos_token_id, tok.pad_token_id,
                                      temperature=r.temperature, top_k=r.top_k, top_p=r.top_p, greedy=greedy)
        fn = functools.partial(sample, lean=r.lean) if r.backend == "sample" else hf_generate
        bs = r.batch_size or prompt_ids.shape[0]
        outs = []
        with self.autocast():
            for s in range(0, prompt_ids.shape[0], bs):
                outs.append(fn(model, prompt_ids[s:s + bs], prompt_mask[s:s + bs], max_new_tokens, tok.eos_token_id,
                               tok.pad_token_id, temperature=r.temperature, top_k=r.top_k, top_p=r.top_p,
                               greedy=greedy))
        width = max(o.shape[1] for o in outs)
        return torch.cat([torch.nn.functional.pad(o, (0, width - o.shape[1]), value=tok.pad_token_id) for o in outs])

    def complete(self, model, texts: list[str], max_new_tokens: int, greedy: bool = False,
                 version: int = 0) -> list[str]:
        """One completion per raw text (no chat template): the step labeller's continuations."""
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        out = self.generate(model, enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device),
                            max_new_tokens, greedy=greedy, version=version)
        mask, _ = completion_mask(out, self.tokenizer.eos_token_id)
        return [self.tokenizer.decode(row[m.bool()].tolist(), skip_special_tokens=True) for row, m in zip(out, mask)]
