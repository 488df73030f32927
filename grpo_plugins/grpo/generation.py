"""The one rollout path: prompts -> completion ids on the policy's device, for training, evaluation
and the cycle's step labeller (``Generator``), through the built-in sampler, transformers'
``generate`` or a colocated vLLM engine.

``sample`` is a plain KV-cache sampling loop (temperature, top-k, top-p, stop at EOS) over one of
the decoders in ``decode.py``. It does the same work as ``model.generate`` without its per-token
bookkeeping, which dominates on small models; ``backend: generate`` in the config uses
transformers' ``generate`` instead.

Every backend stops on the same set of ids (``stop_ids``: the tokenizer's EOS plus every EOS of the
model's generation config, e.g. Llama-3-Instruct's 128008 and 128009) and returns ``Completions``
whose mask covers each completion up to and including its stop token. The vLLM backend's mask is
built from each output's length, as TRL does, since vLLM reports where it stopped.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from . import sharding
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


@dataclass
class Completions:
    """What every backend returns: ids [B, T] (pad after each stop), mask [B, T], truncated [B].

    ``logprobs`` [B, T] are the sampler's own log-probabilities of the sampled tokens (vLLM, for the
    importance-sampling correction), 0 on padding; None for the built-in backends.
    """

    ids: torch.Tensor
    mask: torch.Tensor  # long, 1 up to and including the stop token
    truncated: torch.Tensor  # bool, no stop token within max_new_tokens
    logprobs: torch.Tensor | None = None

    @staticmethod
    def cat(parts: list["Completions"], pad_id: int) -> "Completions":
        """Row-wise concatenation, right-padding each part to the widest."""
        width = max(p.ids.shape[1] for p in parts)

        def pad(t, value):
            return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)

        lp = None if any(p.logprobs is None for p in parts) else torch.cat([pad(p.logprobs, 0.0) for p in parts])
        return Completions(torch.cat([pad(p.ids, pad_id) for p in parts]), torch.cat([pad(p.mask, 0) for p in parts]),
                           torch.cat([p.truncated for p in parts]), lp)


def stop_ids(tokenizer, model=None) -> list[int]:
    """Token ids that end a completion: the tokenizer's EOS and every EOS of the model's generation config."""
    out: list[int] = []

    def add(value):
        for v in ([value] if isinstance(value, int) else (value or [])):
            if v is not None and int(v) not in out:
                out.append(int(v))

    add(getattr(tokenizer, "eos_token_id", None))
    if model is not None:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        add(getattr(getattr(base, "generation_config", None), "eos_token_id", None))
    if not out:
        raise ValueError("the tokenizer has no eos_token and the model's generation config names none: "
                         "set one, or completions never end")
    return out


@dataclass
class RolloutBatch:
    """One generation: prompts [B, P] (each repeated n times), completions [B, T], masks, Rollouts."""

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    completion_ids: torch.Tensor
    mask: torch.Tensor  # [B, T] 1 up to and including the first EOS
    truncated: torch.Tensor  # [B] no EOS within max_new_tokens
    rollouts: list[Rollout]
    sampler_logp: torch.Tensor | None = None  # [B, T] the sampler's log-probs (vLLM), for importance sampling


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


def _no_grad(model):
    """inference_mode, except for sharded parameters: FSDP2 would keep the gathered weights as inference
    tensors, which the next training forward may not update in place (no_grad then, as TRL)."""
    return torch.no_grad() if sharding.is_fsdp2(model) or sharding.is_zero3(model) else torch.inference_mode()


def sample(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int,
           eos_id: int | Sequence[int], pad_id: int, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
           greedy: bool = False, compact_at: float = 0.25, lean: bool = True, synced: bool = False) -> torch.Tensor:
    """Sample completions for left-padded prompts. input_ids, attention_mask: [B, P].

    Returns completion ids [B, T] (T <= max_new_tokens), padded with pad_id after each EOS (any of
    ``eos_id`` when it is a list).
    Finished rows leave the batch (their KV cache rows are dropped) once they make up
    ``compact_at`` of it, so the tail of a generation only computes the rows still running.
    ``lean`` uses ``decode.LeanDecoder`` when the model is one it supports. ``synced`` (sharded
    parameters, several processes) keeps stepping until every process's rows are done, since each
    forward is a collective.
    """
    with _no_grad(model):
        return _sample(model, input_ids, attention_mask, max_new_tokens, eos_id, pad_id, temperature, top_k, top_p,
                       greedy, compact_at, lean, synced)


def _sample(model, input_ids, attention_mask, max_new_tokens, eos_id, pad_id, temperature, top_k, top_p, greedy,
            compact_at, lean, synced):
    B, device = input_ids.shape[0], input_ids.device
    stops = torch.tensor([eos_id] if isinstance(eos_id, int) else list(eos_id), dtype=torch.long, device=device)
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
        done = done | torch.isin(tok, stops)
        if t == max_new_tokens - 1 or (sharding.all_done(done) if synced else bool(done.all())):
            break
        if decoder.can_keep and int(done.sum()) >= compact_at * done.numel() and not bool(done.all()):
            keep = (~done).nonzero().squeeze(-1)
            decoder.keep(keep)
            rows, tok, done = rows[keep], tok[keep], done[keep]
        logits = decoder.step(tok)
    return result[:, :length]


def hf_generate(model, input_ids, attention_mask, max_new_tokens, eos_id, pad_id, temperature=1.0,
                top_k=0, top_p=1.0, greedy=False, synced=False) -> torch.Tensor:
    """The same contract as ``sample`` through transformers' ``generate``."""
    with _no_grad(model):
        out = model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
                             do_sample=not greedy, temperature=temperature if not greedy else None,
                             top_k=top_k if (top_k and not greedy) else None, top_p=top_p if not greedy else None,
                             eos_token_id=eos_id if isinstance(eos_id, int) else list(eos_id), pad_token_id=pad_id,
                             synced_gpus=synced)
    return out[:, input_ids.shape[1]:]


def completion_mask(completion_ids: torch.Tensor, eos_id: int | Sequence[int],
                    lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask [B, T] with 1 up to and including the first stop id, truncated [B] = no stop id).

    ``eos_id`` may be a list (every id that ends a completion). With ``lengths`` [B] (what the
    sampler reports it produced, vLLM's ``len(token_ids)``) the mask is 1 on the first
    ``lengths[i]`` tokens and a row is truncated when its last token is not a stop id: a pad that
    equals an EOS id, or a stop the sampler made for another reason, cannot move the boundary.
    """
    T, device = completion_ids.shape[1], completion_ids.device
    stops = torch.tensor([eos_id] if isinstance(eos_id, int) else list(eos_id), dtype=torch.long, device=device)
    idx = torch.arange(T, device=device)[None]
    is_eos = torch.isin(completion_ids, stops)
    if lengths is not None:
        lengths = lengths.to(device)
        last = completion_ids.gather(1, (lengths - 1).clamp(min=0)[:, None]).squeeze(1)
        ended = (lengths > 0) & torch.isin(last, stops)
        return (idx < lengths[:, None]).long(), ~ended
    has_eos = is_eos.any(-1)
    first = torch.where(has_eos, is_eos.int().argmax(-1), torch.full_like(has_eos, T, dtype=torch.long))
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
        # data.max_prompt_tokens drops the oldest tokens: the chat template's assistant header at the
        # end is what the model continues (transformers truncates on the right by default)
        tokenizer.truncation_side = "left"

    def encode(self, prompts: list[Any]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """Prompts (strings or chat messages) -> left-padded ids [B, P], mask [B, P], prompt texts."""
        from .data import prompt_text

        d = self.data
        texts = [prompt_text(p, self.tokenizer, d.chat_template, d.system_prompt) for p in prompts]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False,
                             truncation=d.max_prompt_tokens is not None, max_length=d.max_prompt_tokens)
        return enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device), texts

    def generate(self, model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, max_new_tokens: int,
                 greedy: bool = False, version: int = 0) -> Completions:
        """Completions of left-padded prompts [B, P]: ids padded after each stop, their mask and truncation."""
        r, tok = self.rollout, self.tokenizer
        stops = stop_ids(tok, model)
        if self.vllm is not None:
            self.vllm.sync(model, version, gather=sharding.gather)
            return self.vllm.generate(prompt_ids, prompt_mask, max_new_tokens, stops, tok.pad_token_id,
                                      temperature=r.temperature, top_k=r.top_k, top_p=r.top_p, greedy=greedy)
        fn = functools.partial(sample, lean=r.lean) if r.backend == "sample" else hf_generate
        bs = r.batch_size or prompt_ids.shape[0]
        outs = []
        synced = sharding.synced(model)
        with sharding.for_generation(model), self.autocast():
            for s in range(0, prompt_ids.shape[0], bs):
                ids = fn(model, prompt_ids[s:s + bs], prompt_mask[s:s + bs], max_new_tokens, stops,
                         tok.pad_token_id, temperature=r.temperature, top_k=r.top_k, top_p=r.top_p, greedy=greedy,
                         synced=synced)
                outs.append(Completions(ids, *completion_mask(ids, stops)))
        return Completions.cat(outs, tok.pad_token_id)

    def complete(self, model, texts: list[str], max_new_tokens: int, greedy: bool = False,
                 version: int = 0) -> list[str]:
        """One completion per raw text (no chat template): the step labeller's continuations."""
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        out = self.generate(model, enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device),
                            max_new_tokens, greedy=greedy, version=version)
        return [self.tokenizer.decode(row[m.bool()].tolist(), skip_special_tokens=True)
                for row, m in zip(out.ids, out.mask)]


def longest_prompt_tokens(tokenizer, prompts, data) -> int:
    """Tokens in the longest of ``prompts`` as ``Generator.encode`` would feed it (capped by max_prompt_tokens)."""
    from .data import prompt_text

    longest = 0
    texts = [prompt_text(p, tokenizer, data.chat_template, data.system_prompt) for p in prompts]
    for s in range(0, len(texts), 1024):
        enc = tokenizer(texts[s:s + 1024], add_special_tokens=False)["input_ids"]
        longest = max([longest] + [len(e) for e in enc])
    return min(longest, data.max_prompt_tokens) if data.max_prompt_tokens else longest
