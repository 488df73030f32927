"""Built-in ``prm`` plugin: a process reward model that scores each reasoning step, its training,
Math-Shepherd step labels, and retraining at the end of each iterative RL cycle."""

from grpo_plugins import hookimpl

from .reward import PRMReward


@hookimpl
def register_rewards(register):
    register(PRMReward)
