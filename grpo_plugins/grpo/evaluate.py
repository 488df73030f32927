"""Held-out evaluation of a policy through the trainer's rollout path and reward host: greedy
accuracy, and from N sampled completions per prompt pass@k (unbiased), maj@k voted by the reward's
answer equivalence, PRM-weighted maj@k and best-of-k, per-reward means and status shares.

The estimators are plain functions of per-prompt arrays (``PromptSamples``), so they are tested
without a model; ``sampled_eval`` collects those arrays from a trainer.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

import numpy as np
import torch

from .. import stop
from ..errors import SettingError
from ..rewards import can_vote
from ..steps import aggregate_steps

AGGREGATES = ("min", "product", "last")  # how a PRM's step scores weigh a whole completion


# --- estimators ---------------------------------------------------------------------------------

def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k = 1 - C(n-c, k) / C(n, k) (Chen et al. 2021), as a stable product."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i): no huge binomials, no cancellation
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def answer_classes(keys: Sequence[Hashable | None], same: Callable[[Any, Any], bool]) -> list[int]:
    """Class id per answer key (-1 for None = no answer): a key joins the first class whose
    representative ``same`` calls equal, else opens a new class. Equal keys never call ``same``."""
    reps: list[Hashable] = []
    by_key: dict[Hashable, int] = {}
    out = []
    for key in keys:
        if key is None:
            out.append(-1)
            continue
        if key not in by_key:
            by_key[key] = next((j for j, r in enumerate(reps) if same(r, key)), len(reps))
            if by_key[key] == len(reps):
                reps.append(key)
        out.append(by_key[key])
    return out


def subsets(n: int, k: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    """k-subsets of range(n) as an int array [S, k]: all of them when there are at most ``limit``,
    else ``limit`` uniformly random ones."""
    if math.comb(n, k) <= limit:
        return np.array(list(itertools.combinations(range(n), k)), dtype=np.int64).reshape(-1, k)
    return np.argsort(rng.random((limit, n)), axis=1)[:, :k]


def vote(idx: np.ndarray, classes: np.ndarray, correct: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Per subset [S]: whether the (weighted) majority class is correct; ties count as the mean of the
    tied classes (a fair random tie-break, in expectation). No answer in a subset counts as wrong."""
    C = int(classes.max()) + 1 if classes.size else 0
    if C == 0:
        return np.zeros(len(idx))
    answered = classes >= 0
    onehot = np.zeros((len(classes), C))
    onehot[np.flatnonzero(answered), classes[answered]] = 1.0  # [N, C]
    # a class is as correct as its members on average (0 or 1 when the verifier agrees with itself)
    class_correct = (onehot * correct[:, None]).sum(0) / np.maximum(onehot.sum(0), 1)  # [C]
    present = onehot[idx].sum(1) > 0  # [S, C]
    w = np.ones(len(classes)) if weights is None else np.nan_to_num(weights, nan=0.0)
    score = (onehot[idx] * w[idx][:, :, None]).sum(1)  # [S, C] votes per class
    score = np.where(present, score, -np.inf)
    top = score.max(1, keepdims=True)
    tied = present & (score >= top - 1e-12 * np.maximum(np.abs(top), 1.0))
    won = (tied * class_correct).sum(1) / np.maximum(tied.sum(1), 1)
    return np.where(present.any(1), won, 0.0)


def best_of(idx: np.ndarray, correct: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per subset [S]: whether the completion with the highest weight is correct (ties: mean)."""
    w = np.where(np.isnan(weights), -np.inf, weights)[idx]  # [S, k]
    tied = w == w.max(1, keepdims=True)
    return (tied * correct[idx]).sum(1) / tied.sum(1)


def bootstrap_interval(values: Sequence[float], rng: np.random.Generator, resamples: int = 1000,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-prompt values (prompts resampled)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return (float("nan"), float("nan"))
    means = v[rng.integers(0, v.size, (resamples, v.size))].mean(1)
    a = (1 - level) / 2
    return (float(np.quantile(means, a)), float(np.quantile(means, 1 - a)))


def step_weight(steps: Sequence[tuple[int, int, float]] | None, how: str) -> float:
    """One weight from a PRM's step scores: min, product or last (NaN when there are no steps)."""
    value = aggregate_steps([v for _, _, v in (steps or []) if v is not None and not math.isnan(v)], how)
    return float("nan") if value is None else value


# --- per-prompt samples -> metrics --------------------------------------------------------------

@dataclass
class PromptSamples:
    """N sampled completions of one prompt: correctness, answer class (-1 = none), PRM weights."""

    correct: np.ndarray  # [N] float 0/1
    classes: np.ndarray | None = None  # [N] int; None when the reward cannot vote
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # aggregate -> [N]


def sampled_metrics(prompts: Sequence[PromptSamples], ks: Sequence[int], max_subsets: int = 200,
                    seed: int = 0, resamples: int = 1000) -> dict[str, Any]:
    """pass@k, maj@k, PRM-weighted maj@k and best-of-k for each k <= N, each {mean, lo, hi}."""
    if not prompts:
        raise ValueError("no prompts to evaluate")
    n = min(len(p.correct) for p in prompts)
    if any(len(p.correct) != n for p in prompts):
        raise ValueError("every prompt needs the same number of samples")
    ks = sorted({int(k) for k in ks if 1 <= int(k) <= n})
    if not ks:
        raise ValueError(f"no k in 1..{n} (the number of samples per prompt)")
    rng = np.random.default_rng(seed)
    per: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        per.setdefault(name, []).append(float(value))

    for p in prompts:
        c = int(p.correct.sum())
        for k in ks:
            add(f"pass@{k}", pass_at_k(n, c, k))
            if p.classes is None and not p.weights:
                continue
            idx = subsets(n, k, max_subsets, rng)
            if p.classes is not None:
                add(f"maj@{k}", vote(idx, p.classes, p.correct).mean())
            for how, w in p.weights.items():
                add(f"best_of@{k}/{how}", best_of(idx, p.correct, w).mean())
                if p.classes is not None:
                    add(f"prm_maj@{k}/{how}", vote(idx, p.classes, p.correct, w).mean())
    out: dict[str, Any] = {"n": n, "prompts": len(prompts), "k": ks}
    for name, values in per.items():
        lo, hi = bootstrap_interval(values, rng, resamples)
        out[name] = {"mean": float(np.mean(values)), "lo": lo, "hi": hi}
    out["per_prompt"] = {name: [round(v, 6) for v in values] for name, values in per.items()}
    return out


def paired_difference(a: Sequence[float], b: Sequence[float], seed: int = 0,
                      resamples: int = 1000) -> dict[str, float]:
    """Mean of b - a over the same prompts, with a paired bootstrap 95% interval."""
    if len(a) != len(b):
        raise ValueError(f"paired difference needs the same prompts, got {len(a)} and {len(b)}")
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    lo, hi = bootstrap_interval(d, np.random.default_rng(seed), resamples)
    return {"mean": float(d.mean()), "lo": lo, "hi": hi}


# --- collecting samples from a trainer ----------------------------------------------------------

def eval_label(trainer) -> str:
    """The reward that decides correctness: the trainer's choice (first outcome reward by default)."""
    cfg = trainer.cfg
    return getattr(trainer, "eval_label", None) or cfg.eval.reward or cfg.rewards[0].label


def poll_stop(trainer) -> None:
    """A safe point between evaluation batches: raise StopRequested after a stop signal (stop.py)."""
    # inside the GRPO loop (its logger is open) the loop polls after the step's evaluation and saves the
    # step first; stopping here would lose that step's checkpoint
    if getattr(trainer, "logger", None) is None:
        stop.check()


def greedy_correct(trainer, rows, max_new: int) -> tuple[list[bool], int]:
    """Per row: is the greedy completion correct on ``eval.reward``; plus the completion tokens in all."""
    cfg = trainer.cfg
    label = eval_label(trainer)
    correct: list[bool] = []
    lengths = 0
    for s in range(0, len(rows), cfg.eval.batch_size):
        poll_stop(trainer)
        chunk = rows[s:s + cfg.eval.batch_size]
        batch = trainer.generate(chunk, n=1, greedy=True, max_new_tokens=max_new)
        scores = trainer.host.score(batch.rollouts)
        correct += [bool(r.applicable and r.value >= cfg.eval.threshold) for r in scores.results[label]]
        lengths += int(batch.mask.sum())
    return correct, lengths


def greedy_accuracy(trainer, rows, max_new_tokens: int | None = None) -> dict[str, float]:
    """Greedy completions for ``rows`` scored by the trainer's rewards; accuracy on ``eval.reward``.

    A completion is correct when that reward's value is at least ``eval.threshold``."""
    cfg = trainer.cfg
    max_new = max_new_tokens or cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens
    rows = list(rows)
    state = torch.get_rng_state()  # greedy decoding draws no numbers, but keep training's RNG untouched
    correct, lengths = greedy_correct(trainer, rows, max_new)
    torch.set_rng_state(state)
    n = len(rows)
    return {"eval/accuracy": sum(correct) / max(n, 1), "eval/correct": float(sum(correct)), "eval/n": float(n),
            "eval/mean_length": lengths / max(n, 1)}


def step_label(trainer) -> str | None:
    """The step reward whose scores weigh votes: ``eval.step_reward``, else the first step reward."""
    chosen = trainer.cfg.eval.step_reward
    if chosen is not None:
        if chosen not in trainer.host.rewards:
            raise SettingError("eval.step_reward", f"no reward labelled {chosen!r}",
                               f"labels: {', '.join(trainer.host.rewards)}")
        if trainer.host.granularity(chosen) != "step":
            raise SettingError("eval.step_reward", f"reward {chosen!r} is not a step reward")
        return chosen
    return next((c.label for c in trainer.host.configs if trainer.host.granularity(c.label) == "step"), None)


def sampled_eval(trainer, rows, samples: int, ks: Sequence[int], max_subsets: int = 200, seed: int = 0,
                 progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Sample ``samples`` completions per row (temperature = rollout.temperature), score them, and
    return ``sampled_metrics`` plus per-reward means and status shares and what voted."""
    cfg = trainer.cfg
    label = eval_label(trainer)
    reward = trainer.host.rewards[label]
    voting = can_vote(reward)
    plabel = step_label(trainer)
    max_new = cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens
    per_row = max(1, cfg.eval.batch_size // samples)
    rows = list(rows)
    prompts: list[PromptSamples] = []
    values: dict[str, list[float]] = {}
    statuses: dict[str, Counter] = {}
    lengths = truncated = merged = 0
    devices = [trainer.device] if trainer.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # training's RNG stream stays where it was
        torch.manual_seed(seed)
        for s in range(0, len(rows), per_row):
            poll_stop(trainer)
            chunk = rows[s:s + per_row]
            batch = trainer.generate(chunk, n=samples, max_new_tokens=max_new, group_offset=s)
            scores = trainer.host.score(batch.rollouts)
            lengths += int(batch.mask.sum())
            truncated += int(batch.truncated.sum())
            for lab, results in scores.results.items():
                values.setdefault(lab, []).extend(r.value for r in results if r.applicable)
                statuses.setdefault(lab, Counter()).update(str(r.info.get("status")) for r in results
                                                           if "status" in r.info)
            res = scores.results[label]
            for i in range(len(chunk)):
                part = slice(i * samples, (i + 1) * samples)
                group = res[part]
                correct = np.array([float(r.applicable and r.value >= cfg.eval.threshold) for r in group])
                classes = None
                if voting:
                    keys = [reward.answer_key(ro, r) for ro, r in zip(batch.rollouts[part], group)]
                    classes = np.array(answer_classes(keys, reward.same_answer), dtype=np.int64)
                    # how often equivalence, not string equality, decided a vote
                    merged += len({k for k in keys if k is not None}) - len(set(classes[classes >= 0].tolist()))
                weights = {}
                if plabel is not None:
                    steps = [r.steps for r in scores.results[plabel][part]]
                    weights = {how: np.array([step_weight(st, how) for st in steps]) for how in AGGREGATES}
                prompts.append(PromptSamples(correct, classes, weights))
            if progress is not None:
                progress(len(chunk))
    out = sampled_metrics(prompts, ks, max_subsets, seed)
    out["correct_per_prompt"] = [int(p.correct.sum()) for p in prompts]  # enough to re-estimate pass@k
    total = len(rows) * samples
    out["rewards"] = {lab: {"mean": float(np.mean(v)) if v else None,
                            "status": {k: c / total for k, c in sorted(statuses[lab].items())}}
                      for lab, v in values.items()}
    out["vote_reward"] = label if voting else None
    out["merged_answer_keys"] = merged  # distinct answer strings that joined another string's class
    out["step_reward"] = plabel
    out["mean_length"] = lengths / max(total, 1)
    out["truncated"] = truncated / max(total, 1)
    out["temperature"] = cfg.rollout.temperature
    return out


def flat_metrics(result: dict[str, Any], prefix: str = "eval/") -> dict[str, float]:
    """``sampled_eval``'s result as flat floats: eval/pass@4, eval/maj@4, eval/prm_maj@4/min, ...
    plus eval/rewards/{label}/mean and eval/rewards/{label}/{status}."""
    out = {}
    for name, v in result.items():
        if name != "per_prompt" and isinstance(v, dict) and "mean" in v and "lo" in v:
            out[prefix + name] = v["mean"]
    for lab, r in result.get("rewards", {}).items():
        if r["mean"] is not None:
            out[f"{prefix}rewards/{lab}/mean"] = r["mean"]
        for status, share in r["status"].items():
            out[f"{prefix}rewards/{lab}/{status}"] = share
    return out


def progress_printer(desc: str, total: int):
    """(update, close): a tqdm bar on a terminal, plain progress lines elsewhere."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total, desc=desc, unit="prompt")
        return bar.update, bar.close
    done = [0]
    step = max(1, total // 10)

    def update(n: int) -> None:
        before, done[0] = done[0], done[0] + n
        if done[0] // step > before // step or done[0] == total:
            print(f"{desc}: {done[0]}/{total} prompts", file=sys.stderr, flush=True)

    return update, lambda: None
