"""``grpo-plugins train CONFIG.yaml [key=value ...]`` and ``grpo-plugins plot RUN_DIR``."""

from __future__ import annotations

import json
import sys

import click

from .cli import cli
from .config import ConfigError, Problem, load_run_config
from .train_config import TrainConfig


@cli.command("train")
@click.argument("config", type=click.Path(dir_okay=False, exists=True))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
def train_cmd(config, overrides):
    """Train with GRPO. Overrides use dotted keys: train.steps=20 rollout.temperature=0.8."""
    cfg, manager = load_run_config(config, overrides, model=TrainConfig)
    problems = cfg.training_problems()
    if problems:
        raise ConfigError(config, [Problem(p.split(":")[0], None, p.split(": ", 1)[1]) for p in problems])
    from .trainer import GRPOTrainer

    trainer = GRPOTrainer(cfg, manager)
    try:
        final = trainer.train()
    except KeyboardInterrupt:
        click.echo(f"stopped; resume with the same command (run dir {cfg.log.run_dir})", err=True)
        sys.exit(130)
    if trainer.is_main:
        keys = [k for k in ("reward", "kl", "completions/mean_length", "before/eval/accuracy", "after/eval/accuracy")
                if k in final]
        click.echo(json.dumps({k: final[k] for k in keys}, indent=1))
        click.echo(f"run dir: {cfg.log.run_dir} (plot with: grpo-plugins plot {cfg.log.run_dir})")


@cli.command("plot")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="PNG path (default RUN_DIR/curves.png)")
@click.option("--key", "keys", multiple=True, help="metric to plot (repeatable; default: a standard set)")
def plot_cmd(run_dir, out, keys):
    """Write PNG training curves from RUN_DIR/metrics.jsonl (and eval.json)."""
    from .plot import plot_run

    path = plot_run(run_dir, out, list(keys) or None)
    click.echo(str(path))
