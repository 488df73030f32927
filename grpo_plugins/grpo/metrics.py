"""Metrics: one step's row (TRL's names), written as one JSON line per step (``metrics.jsonl``),
TensorBoard scalars (``tb/``), a tqdm progress bar, and sample completions (``samples.jsonl`` plus
an optional printed table)."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from ..io import dumps, finite_or_none, read_log_jsonl, write_jsonl_atomic
from ..rewards import message_text


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``RUN_DIR/metrics.jsonl`` (a torn last line from a kill is skipped)."""
    return read_log_jsonl(Path(run_dir) / "metrics.jsonl")


def _truncate_jsonl(path: Path, last_step: int) -> None:
    """Keep only rows with step <= last_step (a resumed run rewrites the steps after its checkpoint)."""
    if path.exists():
        write_jsonl_atomic(path, [r for r in read_log_jsonl(path) if r.get("step", 0) <= last_step])


def continuations_charged(results: dict[str, list]) -> int:
    """Continuations the rewards sampled for one scored batch: their ``info["continuations"]`` summed
    (the progress reward's prover samples; a missing or non-numeric entry counts 0)."""
    n = 0
    for res in results.values():
        for r in res:
            v = (r.info or {}).get("continuations")
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                n += int(v)
    return n


def step_metrics(*, loss: float, scores, group_size: int, adv, mask, truncated, sampling: dict[str, Any],
                 loss_metrics: dict[str, float], entropy: float, grad_norm: float | None, learning_rate: float,
                 num_tokens: int, times: tuple[float, float, float, float], is_weights=None) -> dict[str, Any]:
    """One GRPO step's metrics row (TRL's names where TRL has one).

    scores: the trained batch's Scores; adv, mask: [B, T]; truncated: [B]; loss_metrics: the loss's
    averaged metrics (kl, clip ratios); times: perf_counter at start, after generation, after
    scoring, after the updates; is_weights: vLLM's importance-sampling weights [B, T] or [B, 1]."""
    import torch  # here, not at the top: plot and the CLI read metrics.jsonl without torch

    from . import advantages as A

    t0, t_gen, t_score, t_end = times
    lengths = mask.sum(-1).float()
    totals = torch.tensor([float("nan") if v is None else v for v in scores.totals])
    has_outcome = any(g == "outcome" for g in scores.granularity.values())
    metrics: dict[str, Any] = {
        "loss": loss,
        "reward": float(totals.nanmean()),
        "reward_std": float(A.group_stats(totals.view(-1, group_size))[2].nanmean()),
        # a group gives no signal when every advantage in it is zero (outcome: equal rewards; step-only
        # runs: equal step rewards), which the summed outcome reward cannot tell when there is none
        "frac_reward_zero_std": A.zero_std_fraction(totals, group_size) if has_outcome else
        float((adv.abs().sum(-1).view(-1, group_size).sum(-1) == 0).float().mean()),
        **sampling,
        **{k: v for k, v in scores.metrics.items() if k.startswith("rewards/")},
        **_step_reward_metrics(scores),
        "completions/mean_length": float(lengths.mean()),
        "completions/min_length": float(lengths.min()),
        "completions/max_length": float(lengths.max()),
        "completions/clipped_ratio": float(truncated.float().mean()),
        **_terminated_lengths(lengths, truncated),
        **loss_metrics,
        "entropy": entropy,
        "advantages/mean_abs": float(adv.abs().sum() / mask.sum().clamp(min=1)),
        "grad_norm": grad_norm,
        "learning_rate": learning_rate,
        "num_tokens": num_tokens,
        "step_time": t_end - t0,
        "time/generate": t_gen - t0,
        "time/score": t_score - t_gen,
        "time/train": t_end - t_score,
        "tokens_per_second": float(mask.sum()) / max(t_gen - t0, 1e-9),
    }
    if is_weights is not None:  # TRL's names
        w = is_weights.expand_as(mask)[mask.bool()]
        for k, f in (("min", torch.min), ("mean", torch.mean), ("max", torch.max)):
            metrics[f"sampling/importance_sampling_ratio/{k}"] = float(f(w)) if w.numel() else float("nan")
    return metrics


def _terminated_lengths(lengths, truncated) -> dict[str, float]:
    """TRL's completions/{mean,min,max}_terminated_length: lengths of completions that ended with EOS (0 if none)."""
    done = lengths[~truncated.to(lengths.device)]
    if done.numel() == 0:
        return {f"completions/{k}_terminated_length": 0.0 for k in ("mean", "min", "max")}
    return {"completions/mean_terminated_length": float(done.mean()),
            "completions/min_terminated_length": float(done.min()),
            "completions/max_terminated_length": float(done.max())}


def _step_reward_metrics(scores) -> dict[str, float]:
    """``rewards/{label}/step_mean`` and ``/steps_per_completion`` for step-granularity rewards."""
    out = {}
    for label, results in scores.results.items():
        if scores.granularity.get(label) != "step":
            continue
        values = [v for r in results for _, _, v in (r.steps or []) if finite_or_none(v) is not None]
        out[f"rewards/{label}/step_mean"] = sum(values) / len(values) if values else float("nan")
        out[f"rewards/{label}/steps_per_completion"] = len(values) / max(len(results), 1)
    return out


def sample_rows(rollouts, host=None) -> list[dict[str, Any]]:
    """``samples.jsonl`` rows of scored rollouts: the user's prompt, completion, rewards, total, advantage;
    with ``host``, also the columns its rewards require (the gold), each reward's status and provenance,
    so ``grpo-plugins rescore`` can score the row again."""
    gold = [] if host is None else [c for r in host.rewards.values() for c in r.required_columns() or ()]
    rows = []
    for r in rollouts:
        row = {**{c: r.columns.get(c) for c in gold},
               "prompt": r.prompt if isinstance(r.prompt, str) else message_text(r.prompt, roles=("user",)),
               "completion": r.text, "rewards": r.rewards, "reward": r.reward, "advantage": r.advantage}
        if host is not None:
            row["status"] = {k: (v or {}).get("status") for k, v in r.info.items()}
            row["provenance"] = host.provenance
        rows.append(row)
    return rows


class MetricsLogger:
    """Writes each step's metrics everywhere at once. Only the main process logs."""

    def __init__(self, run_dir: str | Path, total_steps: int, start_step: int = 0, tensorboard: bool = True,
                 progress: bool = True, enabled: bool = True, every: int = 10, wandb: bool = False,
                 config: dict[str, Any] | None = None):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.total, self.every = total_steps, every
        self.tb = None
        self.bar = None
        self.wandb = None
        if not enabled:
            return
        if wandb:
            self.wandb = start_wandb(self.run_dir, config)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for name in ("metrics.jsonl", "samples.jsonl"):
            _truncate_jsonl(self.run_dir / name, start_step)
        self.file = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8")
        self.samples_file = open(self.run_dir / "samples.jsonl", "a", encoding="utf-8")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=start_step + 1)
            except ImportError:  # tensorboard not installed
                self.tb = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, desc="grpo", unit="step", dynamic_ncols=True,
                            disable=None, file=sys.stderr)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.file.write(dumps({"step": step, **metrics}) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and v is not None and math.isfinite(v):
                    self.tb.add_scalar(k, v, step)
        if self.wandb is not None:
            self.wandb.log({k: v for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)},
                           step=step)
        if self.bar is not None and not self.bar.disable:
            self.bar.update(1)
            short = {k: metrics[k] for k in ("reward", "kl", "completions/mean_length") if k in metrics}
            self.bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in short.items() if v is not None})
        elif step % self.every == 0 or step == self.total:
            print(progress_line(step, self.total, metrics), file=sys.stderr, flush=True)

    def log_eval(self, step: int, metrics: dict[str, Any]) -> None:
        if self.enabled and self.tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, step)
        if self.enabled and self.wandb is not None:
            self.wandb.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=step)

    def samples(self, step: int, rows: list[dict[str, Any]], print_table: bool = False) -> None:
        if not self.enabled or not rows:
            return
        for r in rows:
            self.samples_file.write(dumps({"step": step, **r}) + "\n")
        self.samples_file.flush()
        if print_table:
            self.write(sample_table(step, rows))

    def write(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None and not self.bar.disable:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def close(self) -> None:
        if not self.enabled:
            return
        self.file.close()
        self.samples_file.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()
        if self.bar is not None:
            self.bar.close()


def start_wandb(run_dir: Path, config: dict[str, Any] | None):
    """A wandb run logging into RUN_DIR/wandb (WANDB_MODE=offline needs no account or network)."""
    from ..errors import SettingError

    try:
        import wandb
    except ImportError:
        raise SettingError("log.report_to", "wandb is not installed", "pip install wandb, or drop wandb from "
                                                                      "log.report_to") from None
    (run_dir / "wandb").mkdir(parents=True, exist_ok=True)
    import hashlib

    # one wandb run per run dir, the same id on every resume
    run_id = "grpo-" + hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:12]
    return wandb.init(dir=str(run_dir), config=config, name=run_dir.name, resume="allow", id=run_id)


def _fmt(v: Any) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.4g}"


def progress_line(step: int, total: int, metrics: dict[str, Any]) -> str:
    """The plain progress line printed without a terminal: step, reward, kl, length, step time."""
    return (f"step {step}/{total}  reward {_fmt(metrics.get('reward'))}  kl {_fmt(metrics.get('kl'))}  "
            f"length {_fmt(metrics.get('completions/mean_length'))}  step_time {_fmt(metrics.get('step_time'))}s")


def sample_table(step: int, rows: list[dict[str, Any]], width: int = 60, prompt_width: int = 32) -> str:
    """A text table of prompt tail | completion | each reward's value | total | advantage.

    The prompt's tail, not its head: chat prompts all start with the same template text."""
    def flat(s: Any) -> str:
        return str(s).replace("\n", "\\n")

    def head(s: Any, w: int) -> str:
        s = flat(s)
        return s if len(s) <= w else s[: w - 1] + "~"

    def tail(s: Any, w: int) -> str:
        s = flat(s)
        return s if len(s) <= w else "~" + s[-(w - 1):]

    labels = sorted({k for r in rows for k in (r.get("rewards") or {})})
    cols = "".join(f" | {lab[:10]:>10}" for lab in labels)
    lines = [f"step {step} samples",
             f"{'prompt (end)':<{prompt_width}} | {'completion':<{width}}{cols} | {'reward':>6} | adv"]
    for r in rows:
        vals = "".join(f" | {_fmt((r.get('rewards') or {}).get(lab)):>10}" for lab in labels)
        lines.append(f"{tail(r.get('prompt'), prompt_width):<{prompt_width}} | {head(r.get('completion'), width):<{width}}"
                     f"{vals} | {_fmt(r.get('reward')):>6} | {r.get('advantage', 0.0):+.2f}")
    return "\n".join(lines)
