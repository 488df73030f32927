"""Metrics out: one JSON line per step (``metrics.jsonl``), TensorBoard scalars (``tb/``), a tqdm
progress bar, and sample completions (``samples.jsonl`` plus an optional printed table)."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from ..io import dumps, read_log_jsonl, write_jsonl_atomic


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``RUN_DIR/metrics.jsonl`` (a torn last line from a kill is skipped)."""
    return read_log_jsonl(Path(run_dir) / "metrics.jsonl")


def _truncate_jsonl(path: Path, last_step: int) -> None:
    """Keep only rows with step <= last_step (a resumed run rewrites the steps after its checkpoint)."""
    if path.exists():
        write_jsonl_atomic(path, [r for r in read_log_jsonl(path) if r.get("step", 0) <= last_step])


class MetricsLogger:
    """Writes each step's metrics everywhere at once. Only the main process logs."""

    def __init__(self, run_dir: str | Path, total_steps: int, start_step: int = 0, tensorboard: bool = True,
                 progress: bool = True, enabled: bool = True):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.tb = None
        self.bar = None
        if not enabled:
            return
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
        if self.bar is not None:
            self.bar.update(1)
            short = {k: metrics[k] for k in ("reward", "kl", "completions/mean_length") if k in metrics}
            self.bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in short.items() if v is not None})

    def log_eval(self, step: int, metrics: dict[str, Any]) -> None:
        if self.enabled and self.tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, step)

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
        if self.bar is not None:
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
        if self.bar is not None:
            self.bar.close()


def sample_table(step: int, rows: list[dict[str, Any]], width: int = 60) -> str:
    """A small text table of prompt | completion | reward | advantage."""
    def cut(s: Any) -> str:
        s = str(s).replace("\n", "\\n")
        return s if len(s) <= width else s[: width - 1] + "~"

    lines = [f"step {step} samples", f"{'prompt':<24} | {'completion':<{width}} | reward | adv"]
    for r in rows:
        reward = "None" if r.get("reward") is None else f"{r['reward']:.3f}"
        lines.append(f"{cut(r.get('prompt'))[:24]:<24} | {cut(r.get('completion')):<{width}} | {reward:>6} | "
                     f"{r.get('advantage', 0.0):+.2f}")
    return "\n".join(lines)
