"""PRM training: soft or hard step labels, loss only at the token that ends each step, batches of
similar length, held-out step accuracy and AUC. The loop reads top to bottom; a stop signal
(grpo_plugins.stop) ends it between steps before anything is saved, so the retrain phase reruns."""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from grpo_plugins.stop import check as check_stop

from .data import PRMExample
from .history import HistorySampler
from .metrics import roc_auc, step_accuracy
from .model import Encoded, ProcessRewardModel
from .options import PRMTrainOptions

IGNORE = -100.0


@dataclass
class Batch:
    """input_ids/attention_mask [B, T]; targets [B, T]: the step label at step ends, IGNORE elsewhere."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    targets: torch.Tensor
    tokens: int


def targets_for(example: PRMExample, options: PRMTrainOptions) -> list[float]:
    """Training targets of an example's steps under the soft/hard label option."""
    if options.labels == "hard":
        return [1.0 if v > options.hard_threshold else 0.0 for v in example.labels]
    return list(example.labels)


def make_batch(prm: ProcessRewardModel, rows: Sequence[tuple[Encoded, list[float]]]) -> Batch:
    """Pad encoded examples and place each step's target at its end token (IGNORE everywhere else)."""
    ids, mask = prm.pad([enc.input_ids for enc, _ in rows])
    targets = torch.full(ids.shape, IGNORE, dtype=torch.float32)
    for i, (enc, ys) in enumerate(rows):
        for t, y in zip(enc.ends, ys):
            if t is not None:  # a step cut off by truncation has no token to carry its label
                targets[i, t] = y
    return Batch(ids, mask, targets.to(ids.device), int(mask.sum()))


def step_loss(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Soft cross-entropy at labelled tokens only.

    logits [B, T, 2] (class 1 = good step), targets [B, T] in [0, 1] or IGNORE. Returns the mean over
    labelled tokens of -(y log p_good + (1 - y) log p_bad); with 0/1 targets this is TRL's loss.
    """
    keep = targets != IGNORE
    logp = logits[keep].float().log_softmax(-1)
    y = targets[keep]
    loss = -(y * logp[:, 1] + (1 - y) * logp[:, 0]).mean()
    return loss, {"loss": float(loss.detach()), "steps": float(keep.sum())}


def batches(lengths: Sequence[int], batch_size: int, rng: random.Random, group_by_length: bool) -> list[list[int]]:
    """Index batches for one epoch: shuffled, and within chunks of 64 batches sorted by length."""
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    if group_by_length:
        chunk = batch_size * 64
        idx = [i for c in range(0, len(idx), chunk) for i in sorted(idx[c : c + chunk], key=lambda i: lengths[i])]
    out = [idx[b : b + batch_size] for b in range(0, len(idx), batch_size)]
    rng.shuffle(out)
    return out


def evaluate(prm: ProcessRewardModel, examples: Sequence[PRMExample], options: PRMTrainOptions,
             batch_size: int = 32) -> dict[str, float | None]:
    """Held-out step accuracy and AUC of P(good) against the binarised step labels."""
    if not examples:
        return {"eval/step_accuracy": None, "eval/auc": None, "eval/steps": 0}
    scores = prm.score([(e.prompt, e.completion, e.spans) for e in examples], batch_size)
    cut = options.hard_threshold if options.labels == "hard" else 0.5
    s_all, y_all = [], []
    for e, sc in zip(examples, scores):
        for v, y in zip(sc, e.labels):
            if v is not None:
                s_all.append(v)
                y_all.append(int(y > cut) if options.labels == "hard" else int(y >= cut))
    return {"eval/step_accuracy": step_accuracy(s_all, y_all), "eval/auc": roc_auc(s_all, y_all),
            "eval/steps": len(s_all), "eval/positive_share": (sum(y_all) / len(y_all)) if y_all else None}


def split_eval(examples: list[PRMExample], share: float, seed: int) -> tuple[list[PRMExample], list[PRMExample]]:
    """(train, held-out) with ``share`` of the examples held out, chosen by a seeded shuffle."""
    idx = list(range(len(examples)))
    random.Random(seed).shuffle(idx)
    n_eval = int(round(len(examples) * share)) if len(examples) > 1 else 0
    held = set(idx[:n_eval])
    return [e for i, e in enumerate(examples) if i not in held], [examples[i] for i in sorted(held)]


def plan_batches(lengths: Sequence[int], n_history: int, o: PRMTrainOptions, history_share: float,
                 rng: random.Random) -> list[list[int]]:
    """Index batches for ``o.epochs`` passes over the new items (history items follow the new ones)."""
    n_new = len(lengths) - n_history
    per_epoch = len(HistorySampler(n_new, n_history, o.batch_size, history_share))
    plan: list[list[int]] = []
    while len(plan) < math.ceil(o.epochs * per_epoch):
        if n_history and history_share > 0:
            plan += list(HistorySampler(n_new, n_history, o.batch_size, history_share, rng.randrange(2**31)))
        else:
            plan += batches(lengths[:n_new], o.batch_size, rng, o.group_by_length)
    return plan[: math.ceil(o.epochs * per_epoch)]


def train_prm(init: str | Path, out: str | Path, examples: list[PRMExample], options: PRMTrainOptions | None = None,
              eval_examples: list[PRMExample] | None = None, history: Sequence[PRMExample] = (),
              history_share: float = 0.1, log=None) -> dict[str, float | None]:
    """Train the PRM in ``init`` on new examples plus a share of history; save to ``out``; return metrics."""
    o = options or PRMTrainOptions()
    torch.manual_seed(o.seed)
    rng = random.Random(o.seed)
    if eval_examples is None:
        examples, eval_examples = split_eval(examples, o.eval_share, o.seed)
    prm = ProcessRewardModel.load(init, device=o.device, max_length=o.max_length)
    model = prm.model.train()
    encoded = [(prm.encode(e.prompt, e.completion, e.spans), targets_for(e, o)) for e in [*examples, *history]]
    opt = torch.optim.AdamW(model.parameters(), lr=o.learning_rate, weight_decay=o.weight_decay)
    plan = plan_batches([len(enc.input_ids) for enc, _ in encoded], len(history), o, history_share, rng)
    tokens, losses, t0 = 0, [], time.perf_counter()
    for step, idx in enumerate(plan):
        check_stop()
        batch = make_batch(prm, [encoded[i] for i in idx])
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        loss, m = step_loss(logits, batch.targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if o.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), o.max_grad_norm)
        opt.step()
        tokens += batch.tokens
        losses.append(m["loss"])
        if log is not None:
            log({"prm/step": step, **{f"prm/{k}": v for k, v in m.items()}})
    seconds = time.perf_counter() - t0
    metrics = {"train/examples": len(examples), "train/history_examples": len(history), "train/optimizer_steps": len(plan),
               "train/loss_first": losses[0] if losses else None, "train/loss_last": losses[-1] if losses else None,
               "train/tokens": tokens, "train/seconds": seconds, "train/tokens_per_s": tokens / seconds if seconds else None}
    metrics.update(evaluate(prm, eval_examples, o))
    prm.save(out)
    (Path(out) / "train_metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
