"""Supervised warm-up before GRPO: prompt + completion pairs, loss on the completion tokens only.

A stop signal (stop.py) ends the warm-up between two steps without saving it: it is short and seeded
(the model loaded from disk, batches drawn from ``train.seed``), so the rerun restarts it and reaches
exactly the warmed-up model an uninterrupted run has.

Under ZeRO-3 DeepSpeed owns the one optimizer and steps it inside ``accelerator.backward``, so the
warm-up borrows it at its own settings (learning-rate schedule, betas, no weight decay) and gives it
back as GRPO built it, with no moments: as the separate AdamW of the other engines leaves it."""

from __future__ import annotations

import torch

from .. import stop
from . import sharding
from .data import load_rows, prompt_text
from .optim import lr_multiplier

_SFT_ADAMW = {"betas": (0.9, 0.999), "weight_decay": 0.0}  # torch's AdamW defaults, no decay


def supervised_warmup(model, tokenizer, cfg, accelerator, autocast, show_progress: bool = True,
                      until=None, every: int = 50) -> list[float]:
    """``cfg.sft.steps`` AdamW steps on ``cfg.sft.data`` (cosine after warm-up); returns the losses.
    ``until(step)``, called after every ``every`` steps, ends the warm-up early when it returns True."""
    s, d = cfg.sft, cfg.data
    rows = load_rows(s.data)
    if accelerator.is_main_process:
        print(f"supervised warm-up: {s.steps} steps of {s.batch_size} examples from {s.data}", flush=True)
    examples = []
    for row in rows:
        p = tokenizer(prompt_text(row["prompt"], tokenizer, d.chat_template, d.system_prompt),
                      add_special_tokens=False)["input_ids"]
        c = tokenizer(row["completion"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        examples.append((p, c))
    zero3 = sharding.is_zero3(model)
    if zero3:  # the engine's own optimizer: an AdamW over the size-0 placeholders would never step
        opt = model.optimizer
        grpo_groups = [{k: g[k] for k in ("lr", *_SFT_ADAMW)} for g in opt.param_groups]
        for group in opt.param_groups:
            group.update(_SFT_ADAMW)
    else:
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=s.learning_rate, **_SFT_ADAMW)
    g = torch.Generator().manual_seed(cfg.train.seed)
    model.train()
    losses: list[float] = []
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=s.steps, desc="sft", unit="step", disable=None, dynamic_ncols=True)
    device = accelerator.device
    for k in range(s.steps):
        stop.check()
        for group in opt.param_groups:  # cosine after warm-up (optim.py); LambdaLR would take GRPO's initial_lr
            group["lr"] = s.learning_rate * lr_multiplier(k, "cosine", s.warmup_steps, s.steps)
        batch = [examples[i] for i in torch.randint(len(examples), (s.batch_size,), generator=g).tolist()]
        L = max(len(p) + len(c) for p, c in batch)
        ids = torch.full((len(batch), L), tokenizer.pad_token_id, dtype=torch.long)
        labels = torch.full((len(batch), L), -100, dtype=torch.long)  # -100: no loss on prompt and padding
        attn = torch.zeros((len(batch), L), dtype=torch.long)
        for j, (p, c) in enumerate(batch):
            n = len(p) + len(c)
            ids[j, :n] = torch.tensor(p + c)
            labels[j, len(p):n] = torch.tensor(c)
            attn[j, :n] = 1
        with autocast():
            out = model(input_ids=ids.to(device), attention_mask=attn.to(device), labels=labels.to(device))
        accelerator.backward(out.loss, **sharding.backward_kwargs(accelerator))  # ZeRO-3: the engine steps here
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        if not zero3:
            opt.step()
            opt.zero_grad(set_to_none=True)
        losses.append(float(out.loss.detach()))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if until is not None and (k + 1) % every == 0 and k + 1 < s.steps:
            stopped = until(k + 1)
            model.train()  # the check may have generated in eval mode
            if stopped:
                break
    if bar is not None:
        bar.close()
    if zero3:
        for group, saved in zip(opt.param_groups, grpo_groups):
            group.update(saved)
        opt.optimizer.state.clear()  # GRPO's first update starts its moments, as a fresh AdamW's does
    return losses
