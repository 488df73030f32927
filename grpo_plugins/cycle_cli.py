"""``grpo-plugins cycle CONFIG.yaml [key=value ...]``: iterative RL cycles, resumable after a kill."""

from __future__ import annotations

import json

import click

from .cli import cli
from .config import load_run_config
from .cycle_config import CycleConfig


@cli.command("cycle")
@click.argument("config", type=click.Path(dir_okay=False, exists=True))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--check", is_flag=True, help="only validate the config (every problem with its file and line)")
def cycle_cmd(config, overrides, check):
    """Run iterative RL cycles: GRPO, step labels, replay buffer, reward-model retraining, report.

    Run the same command again after a kill: it resumes at the phase it was in.
    """
    from .cycle import Cycle

    cfg, manager = load_run_config(config, overrides, model=CycleConfig)
    if check:
        click.echo(f"{config}: ok")
        return
    report = Cycle(cfg, manager, log=lambda m: click.echo(m, err=True)).run()
    last = report["cycles"][-1] if report["cycles"] else {}
    click.echo(json.dumps({k: v for k, v in last.items() if k != "seconds"}, indent=1, default=str))
    click.echo(f"report: {cfg.log.run_dir}/report.json, {cfg.log.run_dir}/report.png", err=True)
