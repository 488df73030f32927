"""Built-in ``prm`` plugin: a process reward model that scores each reasoning step, its training,
Math-Shepherd step labels, and retraining at the end of each iterative RL cycle."""

from grpo_plugins import hookimpl, require


@hookimpl
def register_rewards(register):
    require("torch", "transformers", install="pip install 'grpo-plugins[prm]'")
    from .reward import PRMReward

    register(PRMReward)


@hookimpl
def register_commands(cli):
    from .cli import prm_group

    cli.add_command(prm_group)


@hookimpl
def on_cycle_end(context):
    """Retrain each `prm` reward that has `retrain` options on the cycle's labelled rollouts."""
    from .retrain import retrain_configured

    return retrain_configured(context)
