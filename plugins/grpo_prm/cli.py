"""``grpo-plugins prm ...``: build a tiny PRM, train a PRM on TRL / Math-Shepherd / PRM800K files."""

from __future__ import annotations

import json

import click


@click.group("prm")
def prm_group():
    """Process reward model: build, train."""


@prm_group.command("tiny")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--tokenizer", default=None, help="tokenizer directory (default: a character tokenizer)")
@click.option("--hidden-size", default=64, show_default=True)
@click.option("--layers", default=2, show_default=True)
@click.option("--split", default="blank_line", show_default=True, help="step split rule saved with the model")
def tiny_cmd(out, tokenizer, hidden_size, layers, split):
    """Write a randomly initialised tiny PRM (no download) to OUT."""
    from .model import StepFormat
    from .tiny import build_tiny_prm

    build_tiny_prm(out, tokenizer, hidden_size=hidden_size, layers=layers, step_format=StepFormat(split=split))
    click.echo(out)


@prm_group.command("train")
@click.option("--init", "init", required=True, type=click.Path(file_okay=False, exists=True), help="PRM to start from")
@click.option("--data", "data", multiple=True, required=True, type=click.Path(dir_okay=False, exists=True),
              help="JSONL/JSON training file (repeatable)")
@click.option("--eval", "eval_data", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="held-out file (default: --eval-share of the training data)")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["auto", "trl", "math_shepherd", "prm800k", "rollout"]),
              default="auto", show_default=True)
@click.option("--separator", default=None, help="joins TRL/PRM800K step lists (default: the PRM's)")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="PRM training option (epochs, batch_size, learning_rate, labels, ...)")
def train_cmd(init, data, eval_data, out, fmt, separator, options):
    """Train a PRM: loss only at step ends; prints held-out step accuracy and AUC."""
    from grpo_plugins.config import parse_override

    from .data import load_examples
    from .model import ProcessRewardModel
    from .train import PRMTrainOptions, train_prm

    kwargs = {}
    for item in options:
        keys, value = parse_override(item)
        kwargs[".".join(keys)] = value
    opts = PRMTrainOptions(**kwargs)
    sep = separator if separator is not None else ProcessRewardModel.load(init).step_format.separator
    examples = load_examples(data, fmt, sep)
    held = load_examples(eval_data, fmt, sep) if eval_data else None
    metrics = train_prm(init, out, examples, opts, eval_examples=held)
    click.echo(json.dumps(metrics, indent=1))
